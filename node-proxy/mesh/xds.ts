// The node proxy's stream from the control plane: delta ADS for the workload API (Address,
// Authorization and PeerAuthentication, wildcard) over the control-plane client
// (common/control-client: TLS verified against the mesh root, the node's bearer credential).
import type { ControlPlaneClient } from '../../common/control-client/bootstrap';
import type { Logger } from '../../common/log';
import type { DeltaXdsClient } from '../../common/xds/client';
import { WORKLOAD_API_RESOURCE_TYPES } from '../state/resource-types';

export function workloadXdsClient(cp: ControlPlaneClient, node: string, log: Logger): DeltaXdsClient {
  return cp.deltaAds({
    node: { id: `node-proxy~${node}`, metadata: { NODE_NAME: node } },
    types: WORKLOAD_API_RESOURCE_TYPES.map((type) => ({ type })),
    logger: log.child({ component: 'xds' }),
  });
}
