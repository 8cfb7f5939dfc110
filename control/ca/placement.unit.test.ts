import { describe, expect, it } from 'vitest';
import { identity } from '../../common/identity/spiffe';
import type { Workload } from '../resources/workload';
import { MemorySnapshot } from '../store/snapshot';
import { placementFromSnapshot } from './placement';

function workload(name: string, namespace: string, serviceAccount: string, node: string): Workload {
  return {
    apiVersion: 'nodemesh.io/v1alpha1',
    kind: 'Workload',
    metadata: { name, namespace },
    spec: { serviceAccount, node, addresses: ['10.200.1.10'] },
  } as Workload;
}

describe('placementFromSnapshot', () => {
  it('allows an identity only on the nodes where a workload with that service account runs', () => {
    let snapshot = MemorySnapshot.of(1, [
      workload('web-1', 'shop', 'web', 'node-1'),
      workload('web-2', 'shop', 'web', 'node-2'),
      workload('db-1', 'data', 'db', 'node-2'),
    ]);
    const allowed = placementFromSnapshot(() => snapshot, 'cluster.local');
    expect(allowed(identity('shop', 'web'), 'node-1')).toBe(true);
    expect(allowed(identity('shop', 'web'), 'node-2')).toBe(true);
    expect(allowed(identity('data', 'db'), 'node-1')).toBe(false);
    expect(allowed(identity('shop', 'db'), 'node-2')).toBe(false); // same SA name, other namespace
    expect(allowed(identity('shop', 'web', 'other.td'), 'node-1')).toBe(false);
    // Follows the store: once the workload moves, the old node loses the identity.
    snapshot = MemorySnapshot.of(2, [workload('web-2', 'shop', 'web', 'node-2')]);
    expect(allowed(identity('shop', 'web'), 'node-1')).toBe(false);
  });
});
