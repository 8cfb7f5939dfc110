// Golden-file tests for the workload API translation (what node proxies receive over delta ADS):
// every Address, Authorization and PeerAuthentication of a mesh, as proto JSON, in
// control/workload/testdata/. Regenerate with UPDATE_GOLDEN=1 and review the diff.
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { Address, Authorization, PeerAuthentication } from '../../api/gen/nodemesh/workload/v1/workload';
import { baseMesh, namespace, policy, service, snapshotOf, workload } from '../../test/envoy/fixtures';
import { expectGolden } from '../../test/support/golden';
import { translateWorkloadApi } from './translate';

const GOLDEN_DIR = join(__dirname, 'testdata');

/** The whole translated state, keyed and sorted by resource name. */
function stateJson(docs: readonly unknown[]): unknown {
  const s = translateWorkloadApi(snapshotOf(docs));
  const sorted = <T>(m: Map<string, T>, toJSON: (v: T) => unknown) => Object.fromEntries([...m.keys()].sort().map((k) => [k, toJSON(m.get(k) as T)]));
  return {
    addresses: sorted(s.addresses, (a) => Address.toJSON(a)),
    authorizations: sorted(s.authorizations, (a) => Authorization.toJSON(a)),
    peerAuthentications: sorted(s.peerAuthentications, (p) => PeerAuthentication.toJSON(p)),
    warnings: s.warnings,
  };
}

const peerAuthentication = (name: string, ns: string, spec: Record<string, unknown>) => ({
  apiVersion: 'security.nodemesh.io/v1alpha1',
  kind: 'PeerAuthentication',
  metadata: { name, namespace: ns },
  spec,
});

const CASES: Record<string, unknown[]> = {
  // Services with a waypoint, named target ports, health annotations, workloads on two nodes.
  'workload-api-mesh': [...baseMesh().map((d) => (isNamespace(d, 'default') ? namespace('default', { 'nodemesh.io/dataplane-mode': 'ambient' }) : d))],
  // Enrolment: a namespace in the mesh with one workload opting out, and one outside the mesh.
  'workload-api-dataplane-mode': [
    namespace('shop', { 'nodemesh.io/dataplane-mode': 'ambient' }),
    namespace('legacy'),
    workload('cart', '10.200.1.30', { app: 'cart' }, { ns: 'shop' }),
    workload('batch', '10.200.1.31', { app: 'batch', 'nodemesh.io/dataplane-mode': 'none' }, { ns: 'shop' }),
    workload('old', '10.200.2.30', { app: 'old' }, { ns: 'legacy' }),
    service('cart', '10.96.1.30', [{ name: 'http', port: 80, targetPort: 8080 }], { ns: 'shop' }),
  ],
  // L4 policies: ALLOW by principal and port, DENY by namespace and ipBlock, a targetRefs policy
  // on a Service without a waypoint (fail closed), and mTLS modes at three levels.
  'workload-api-policy': [
    namespace('default', { 'nodemesh.io/dataplane-mode': 'ambient' }),
    namespace('nodemesh-system'),
    workload('db-0', '10.200.2.7', { app: 'db' }),
    workload('api-0', '10.200.2.8', { app: 'api' }),
    service('db', '10.96.0.20', [{ name: 'tcp', port: 5432 }]),
    service('api', '10.96.0.21', [{ name: 'http', port: 80, targetPort: 8080 }]),
    policy('allow-web', {
      selector: { matchLabels: { app: 'db' } },
      action: 'ALLOW',
      rules: [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/web'] } }], to: [{ operation: { ports: ['5432'] } }] }],
    }),
    policy('deny-outside', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['outside'] } }, { source: { ipBlocks: ['192.168.0.0/16'] } }] }] }),
    policy('api-l7', { targetRefs: [{ kind: 'Service', group: '', name: 'api' }], action: 'ALLOW', rules: [{ to: [{ operation: { methods: ['GET'] } }] }] }),
    peerAuthentication('mesh', 'nodemesh-system', { mtls: { mode: 'PERMISSIVE' } }),
    peerAuthentication('strict', 'default', { mtls: { mode: 'STRICT' } }),
    peerAuthentication('db-metrics', 'default', { selector: { matchLabels: { app: 'db' } }, portLevelMtls: { '9102': { mode: 'PERMISSIVE' } } }),
  ],
  // A use-waypoint naming a Gateway that does not exist: published unresolved (traffic refused).
  'workload-api-unresolved-waypoint': [
    namespace('default', { 'nodemesh.io/dataplane-mode': 'ambient', 'nodemesh.io/use-waypoint': 'missing' }),
    workload('web-a', '10.200.1.10', { app: 'web' }),
    service('web', '10.96.0.10', [{ name: 'http', port: 8080 }]),
  ],
};

function isNamespace(d: unknown, name: string): boolean {
  const r = d as { kind?: string; metadata?: { name?: string } };
  return r.kind === 'Namespace' && r.metadata?.name === name;
}

describe('workload API translation (golden files)', () => {
  for (const [name, docs] of Object.entries(CASES)) {
    it(name, () => expectGolden(GOLDEN_DIR, name, stateJson(docs)));
  }
});
