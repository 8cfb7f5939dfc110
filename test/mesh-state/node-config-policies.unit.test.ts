// `nodemesh node-config policies` lists every policy a node proxy enforces — AuthorizationPolicies
// by workload selector, namespace-wide and mesh-wide (the root namespace), and PeerAuthentications
// of all three scopes — from policies as the control plane translates them and the node proxy's
// WorkloadState holds them, read over a real admin endpoint (the views node-proxy/mesh serves:
// /policies and /peer-authentications) by the real CLI code with --admin.
import { describe, expect, it } from 'vitest';
import { validateResource, type AnyResource } from '../../control/resources';
import { MemorySnapshot } from '../../control/store/snapshot';
import { translateWorkloadApi } from '../../control/workload/translate';
import { startAdmin } from '../../node-proxy/admin/server';
import { runNodeConfig } from '../../node-proxy/admin/cli';
import { WorkloadState } from '../../node-proxy/state';
import { cleanupAfterEach } from '../support/cleanups';

const cleanup = cleanupAfterEach();

const ap = (namespace: string, name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'security.nodemesh.io/v1alpha1',
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace },
  spec,
});
const pa = (namespace: string, name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'PeerAuthentication',
  metadata: { name, namespace },
  spec,
});
const RESOURCES = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'nodemesh.io/dataplane-mode': 'ambient' } } },
  {
    apiVersion: 'nodemesh.io/v1alpha1',
    kind: 'Workload',
    metadata: { name: 'db-0', namespace: 'shop', labels: { app: 'db' } },
    spec: { node: 'node-1', addresses: ['10.200.1.7'], serviceAccount: 'db' },
  },
  ap('shop', 'db-from-api', {
    selector: { matchLabels: { app: 'db' } },
    action: 'ALLOW',
    rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/api'] } }] }],
  }),
  ap('shop', 'deny-outside', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['outside'] } }] }, { to: [{ operation: { ports: ['22'] } }] }] }),
  ap('nodemesh-system', 'mesh-deny-legacy', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['legacy'] } }] }] }),
  pa('nodemesh-system', 'default', { mtls: { mode: 'STRICT' } }),
  pa('shop', 'default', { mtls: { mode: 'PERMISSIVE' } }),
  pa('shop', 'db-metrics', { selector: { matchLabels: { app: 'db' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '9090': { mode: 'PERMISSIVE' } } }),
];

async function nodeProxyAdmin(): Promise<string> {
  const api = translateWorkloadApi(MemorySnapshot.of(1, RESOURCES.map((d) => validateResource(d)) as AnyResource[]));
  const state = new WorkloadState('node-1');
  state.applyAuthorizations({ updated: [...api.authorizations].map(([name, value]) => ({ name, value, version: '1' })), removed: [] });
  state.applyPeerAuthentications({ updated: [...api.peerAuthentications].map(([name, value]) => ({ name, value, version: '1' })), removed: [] });
  const admin = await startAdmin(
    {
      workloads: () => [],
      connections: () => [],
      stats: () => ({}),
      notReadyReason: () => undefined,
      extra: {
        '/policies': () => [...state.allAuthorizations().values()],
        '/peer-authentications': () => [...state.allPeerAuthentications().values()],
      },
    },
    { adminPort: 0, readyPort: 0, readyHost: '127.0.0.1' },
  );
  cleanup(() => admin.close());
  return `127.0.0.1:${admin.adminPort}`;
}

async function nodeConfig(args: string[]): Promise<string> {
  let text = '';
  const stdout = { write: (s: string) => ((text += s), true) } as unknown as NodeJS.WritableStream;
  expect(await runNodeConfig(args, async () => undefined, { stdout })).toBe(0);
  return text;
}

describe('node-config policies', () => {
  it('lists selector, namespace-wide and mesh-wide AuthorizationPolicies and PeerAuthentications', async () => {
    const admin = await nodeProxyAdmin();
    const table = await nodeConfig(['policies', '--admin', admin, '--node', 'node-1']);
    const rows = table
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s{2,}/));
    expect(rows[0]).toEqual(['PROXY', 'NAMESPACE', 'POLICY NAME', 'KIND', 'ACTION', 'SCOPE', 'RULES']);
    expect(rows.slice(1).sort()).toEqual(
      [
        ['node-1', 'shop', 'db-from-api', 'AuthorizationPolicy', 'ALLOW', 'WorkloadSelector', '1'],
        ['node-1', 'shop', 'deny-outside', 'AuthorizationPolicy', 'DENY', 'Namespace', '2'],
        ['node-1', 'nodemesh-system', 'mesh-deny-legacy', 'AuthorizationPolicy', 'DENY', 'Global', '1'],
        ['node-1', 'nodemesh-system', 'default', 'PeerAuthentication', 'mTLS STRICT', 'Global', '0'],
        ['node-1', 'shop', 'default', 'PeerAuthentication', 'mTLS PERMISSIVE', 'Namespace', '0'],
        ['node-1', 'shop', 'db-metrics', 'PeerAuthentication', 'mTLS STRICT', 'WorkloadSelector', '1'],
      ].sort(),
    );
    // -o json: the admin's own objects, each marked with its kind
    const json = JSON.parse(await nodeConfig(['policies', '--admin', admin, '--node', 'node-1', '-o', 'json'])) as Record<
      string,
      Array<{ kind: string; namespace: string; name: string }>
    >;
    expect(json['node-1']?.map((p) => `${p.kind} ${p.namespace}/${p.name}`).sort()).toEqual([
      'AuthorizationPolicy nodemesh-system/mesh-deny-legacy',
      'AuthorizationPolicy shop/db-from-api',
      'AuthorizationPolicy shop/deny-outside',
      'PeerAuthentication nodemesh-system/default',
      'PeerAuthentication shop/db-metrics',
      'PeerAuthentication shop/default',
    ]);
  });
});
