// The node proxy's connection to the control plane, assembled: a delta ADS client following the
// workload API (Address, Authorization and PeerAuthentication, wildcard) feeding a WorkloadState. The daemon creates one,
// starts it, waits for the first complete state (readiness), and reads the state from then on.
import type { Logger } from '../../common/log';
import { createLogger } from '../../common/log';
import type { BackoffOptions } from '../../common/xds/backoff';
import { DeltaXdsClient, type XdsCredentials } from '../../common/xds/client';
import { WORKLOAD_API_RESOURCE_TYPES } from './resource-types';
import { WorkloadState } from './workload-state';

export interface MeshStateOptions {
  /** host:port of the control plane's xDS (15012 with TLS; 15010 plaintext on loopback). */
  readonly target: string;
  readonly credentials: XdsCredentials;
  /** This node's name (Workload.node of the workloads it serves). */
  readonly nodeName: string;
  /** xDS node id; defaults to "node-proxy~<nodeName>". */
  readonly nodeId?: string;
  readonly backoff?: BackoffOptions;
  readonly logger?: Logger;
}

export interface MeshState {
  readonly client: DeltaXdsClient;
  readonly state: WorkloadState;
  start(): void;
  stop(): void;
}

export function createMeshState(options: MeshStateOptions): MeshState {
  const logger = options.logger ?? createLogger('mesh-state');
  const client = new DeltaXdsClient({
    target: options.target,
    credentials: options.credentials,
    node: { id: options.nodeId ?? `node-proxy~${options.nodeName}`, metadata: { NODE_NAME: options.nodeName, ROLE: 'node-proxy' } },
    types: WORKLOAD_API_RESOURCE_TYPES.map((type) => ({ type })),
    backoff: options.backoff,
    logger,
  });
  const state = new WorkloadState(options.nodeName);
  const unbind = state.bindTo(client);
  return {
    client,
    state,
    start: () => client.start(),
    stop: () => {
      client.stop();
      unbind();
    },
  };
}
