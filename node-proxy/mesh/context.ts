// What the mesh data path shares: the state, identities, telemetry, the HBONE client, the
// connection table and the registry of open connections that policy may close later.
import type { Workload } from '../../api/gen/nodemesh/workload/v1/workload';
import type { HboneClient } from '../../common/hbone/client';
import type { CertificateManager } from '../../common/identity/manager';
import { formatSpiffeId } from '../../common/identity/spiffe';
import type { Logger } from '../../common/log';
import { policyContext } from '../policy/context';
import type { PolicyContext } from '../policy/model';
import type { PeerAuthenticationPolicy } from '../policy/peer-authentication';
import type { HandlerDeps } from '../proxy/handlers';
import type { WorkloadState } from '../state/workload-state';
import type { NodeProxyTelemetry } from '../telemetry/metrics';
import type { ControlWorkloadSource } from './control-source';
import type { PolicyGuard } from './guard';
import { identityOf } from './runtime';

export interface MeshContext {
  readonly node: string;
  readonly trustDomain: string;
  readonly state: WorkloadState;
  readonly source: ControlWorkloadSource;
  readonly certs: CertificateManager;
  readonly telemetry: NodeProxyTelemetry;
  readonly hbone: HboneClient;
  readonly guard: PolicyGuard;
  readonly log: Logger;
  /** PeerAuthentication policies in force (the workload API does not carry them yet). */
  readonly peerAuthentications: () => readonly PeerAuthenticationPolicy[];
  /** Sockets, original destinations, connection table (set when the enroller is built). */
  deps(): HandlerDeps;
  /** Whether this node proxy serves the workload (enrolled here, HBONE listener open). */
  servesLocally(w: Workload): boolean;
}

export const spiffeOf = (ctx: Pick<MeshContext, 'trustDomain'>, w: Workload): string => formatSpiffeId(identityOf(w, ctx.trustDomain));

export function contextFor(ctx: MeshContext, destination: Workload, port: number): PolicyContext {
  return policyContext(ctx.state, destination, port, ctx.peerAuthentications(), ctx.trustDomain);
}
