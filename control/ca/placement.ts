// Which identities a node may obtain certificates for: the service accounts of the workloads
// scheduled on it. The certificate service asks this before signing anything.
import type { Identity } from '../../common/identity/spiffe';
import { GATEWAY_NAME_LABEL } from '../../common/contracts/labels';
import type { StreamCaller, WaypointPlacement } from '../xds/node-binding';
import type { Snapshot } from '../store/store';

/** True when some workload running as `identity` is scheduled on `node`. */
export type WorkloadPlacement = (identity: Identity, node: string) => boolean;

/**
 * Placement from the config store: `identity` is allowed on `node` when a Workload in the
 * identity's namespace with that serviceAccount has `spec.node == node` (and the identity is in
 * this mesh's trust domain). Reads the current snapshot on every call.
 */
export function placementFromSnapshot(current: () => Snapshot, trustDomain: string): WorkloadPlacement {
  return (id, node) => {
    if (id.trustDomain !== trustDomain) return false;
    return current()
      .list('Workload', { namespace: id.namespace })
      .some((w) => w.spec.node === node && w.spec.serviceAccount === id.serviceAccount);
  };
}

/**
 * Which waypoints an xDS caller may act as, from the config store: waypoint `ns/name` when a
 * Workload in `ns` labelled gateway-name=<name> is scheduled on the caller's node and, for a
 * caller bound to one service account, runs as it — the rule the CA applies to the waypoint's
 * certificate. Reads the current snapshot on every call (once per stream).
 */
export function waypointPlacementFromSnapshot(current: () => Snapshot): WaypointPlacement {
  return (waypoint, caller: StreamCaller) => {
    if (caller.only && caller.only.namespace !== waypoint.namespace) return false;
    return current()
      .list('Workload', { namespace: waypoint.namespace })
      .some(
        (w) =>
          w.metadata.labels?.[GATEWAY_NAME_LABEL] === waypoint.name &&
          (caller.anyNode === true || w.spec.node === caller.node) &&
          (!caller.only || w.spec.serviceAccount === caller.only.serviceAccount),
      );
  };
}
