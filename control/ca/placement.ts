// Which identities a node may obtain certificates for: the service accounts of the workloads
// scheduled on it. The certificate service asks this before signing anything.
import type { Identity } from '../../common/identity/spiffe';
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
