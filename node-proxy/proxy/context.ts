// What connection handling uses, built once before the proxy starts: sockets in workload netns,
// the original destinations capture recorded, the one tracker (table, telemetry, policy guard),
// and in control-plane mode the mesh services (state, identities, certificates, HBONE client).
import type { HboneClient } from '../../common/hbone/client';
import type { NativeHboneClient } from '../../native/hbone-client';
import type { SameNodeFastPath } from '../../native/sockmap';
import type { CertificateManager } from '../../common/identity/manager';
import type { ListenerTimeouts } from '../../common/listener-timeouts';
import type { Logger } from '../../common/log';
import type { ControlWorkloadSource } from '../mesh/control-source';
import type { PlaintextInboundLimits } from './inbound-limits';
import type { NetnsSockets } from './netns-sockets';
import type { OriginalDestinations } from './original-destination';
import type { PlanView } from './plan';
import type { ConnectionTracker } from './tracker';

/** Control-plane mode: what planning reads plus what tunnels need. */
export interface MeshServices extends PlanView {
  readonly source: ControlWorkloadSource;
  readonly certs: CertificateManager;
  readonly hbone: HboneClient;
  /** Set when NODEMESH_HBONE_ENGINE=native (hbone-engine.ts): outbound tunnels go through the addon's engine. */
  readonly nativeHbone?: NativeHboneClient;
}

export interface ProxyContext {
  readonly sockets: NetnsSockets;
  readonly originals: OriginalDestinations;
  readonly tracker: ConnectionTracker;
  readonly log: Logger;
  /** Absent in passthrough (lab) mode: every connection goes direct. */
  readonly mesh?: MeshServices;
  /** Same-node connections are spliced in the kernel (native/splice.ts) once admitted. */
  readonly kernelSplice?: boolean;
  /** With kernelSplice: admitted same-node bytes go app socket to app socket (native/sockmap.ts). */
  readonly sameNodeFastPath?: SameNodeFastPath;
  /** 15006's connect and idle timeouts (default: PLAINTEXT_INBOUND_LIMITS). */
  readonly inboundLimits?: PlaintextInboundLimits;
  /** Where 15006's timeouts are counted (`listener="inbound"`). */
  readonly listenerTimeouts?: ListenerTimeouts;
}
