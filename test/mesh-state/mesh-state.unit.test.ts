// The node proxy's view of the mesh end to end on loopback: resources written to the control
// plane's store are translated, served over delta ADS on the TLS port (serving certificate from
// the real CA), received by the node proxy's xDS client, indexed by WorkloadState, and used for the
// routing decision and L4 policy — the path a connection's decisions take in the running proxy.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { controlPlaneClient } from '../../common/control-client/bootstrap';
import { tokenFileCredential } from '../../common/control-client/credential';
import { NodeTokens } from '../../control/ca/tokens';
import { MemoryStore } from '../../control/store/base-store';
import { workloadXdsClient } from '../../node-proxy/mesh/xds';
import { connectionsNoLongerAllowed, evaluate, policyContext, type PolicyConnection } from '../../node-proxy/policy';
import { resolve, RoundRobin, WorkloadState, type LocalWorkloadEvent } from '../../node-proxy/state';
import { NodeProxyTelemetry } from '../../node-proxy/telemetry';
import { cleanupAfterEach } from '../support/cleanups';
import { openTestCa, serveTls, silentLogger as silent } from '../support/control-plane';
import { until } from '../support/until';

const cleanup = cleanupAfterEach();

const ns = (name: string) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'nodemesh.io/dataplane-mode': 'ambient' } } });
const workload = (namespace: string, name: string, ip: string, node: string, labels: Record<string, string>) => ({
  apiVersion: 'nodemesh.io/v1alpha1',
  kind: 'Workload',
  metadata: { name, namespace, labels },
  spec: { node, addresses: [ip], serviceAccount: labels.app ?? name },
});
const allowFrontendToDb = {
  apiVersion: 'security.nodemesh.io/v1alpha1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'allow-frontend', namespace: 'backend' },
  spec: {
    selector: { matchLabels: { app: 'db' } },
    action: 'ALLOW',
    rules: [{ from: [{ source: { namespaces: ['frontend'] } }], to: [{ operation: { ports: ['5432'] } }] }],
  },
};
const denyWeb = {
  apiVersion: 'security.nodemesh.io/v1alpha1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'deny-web', namespace: 'backend' },
  spec: { action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/frontend/sa/web'] } }] }] },
};

async function controlPlane() {
  const testCa = await openTestCa('mesh-state');
  cleanup(() => testCa.remove());
  const store = new MemoryStore();
  cleanup(() => store.close());
  await store.applyAll([
    ns('frontend'),
    ns('backend'),
    workload('frontend', 'web-1', '10.200.1.5', 'node-1', { app: 'web' }),
    workload('backend', 'db-0', '10.200.2.7', 'node-2', { app: 'db', version: 'v2' }),
    workload('backend', 'api-0', '10.200.2.8', 'node-2', { app: 'api' }),
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'db', namespace: 'backend' },
      spec: { clusterIP: '10.96.0.20', selector: { app: 'db' }, ports: [{ port: 5432, targetPort: 5432 }] },
    },
    allowFrontendToDb,
  ]);
  const cp = await serveTls(store, testCa, { serverNames: { dnsNames: ['localhost'] } });
  cleanup(() => cp.stop());
  return { store, cp, testCa, target: `localhost:${cp.ports.tls}` };
}

/**
 * The node proxy's stream as `node-proxy --control` opens it (node-proxy/mesh/run.ts): the
 * control-plane client from a trust bundle file and the node's token file, the workload API over
 * delta ADS, indexed by a WorkloadState bound to it as the Mesh binds it.
 */
function nodeProxyStream(target: string, dir: string, node: string, trustBundlePem: string) {
  const trustBundleFile = join(dir, `trust-bundle-${node}.pem`);
  const tokenFile = join(dir, `token-${node}`);
  writeFileSync(trustBundleFile, trustBundlePem);
  writeFileSync(tokenFile, NodeTokens.forDataDir(dir).issue(node) + '\n', { mode: 0o600 });
  const cp = controlPlaneClient({ control: target, trustBundleFile, credential: tokenFileCredential(tokenFile) });
  const client = workloadXdsClient(cp, node, silent);
  const state = new WorkloadState(node);
  const unbind = state.bindTo(client);
  return {
    client,
    state,
    start: () => client.start(),
    stop: () => {
      client.stop();
      unbind();
      cp.close();
    },
  };
}

describe('mesh state from the control plane over TLS', () => {
  it('routes a VIP to its endpoint, authorizes by policy, and re-checks open connections when policy changes', async () => {
    const { store, cp, testCa, target } = await controlPlane();
    const mesh = nodeProxyStream(target, testCa.dir, 'node-1', cp.trustBundlePem!);
    cleanup(() => mesh.stop());
    const local: LocalWorkloadEvent[] = [];
    mesh.state.onLocalWorkload((e) => local.push(e));
    const telemetry = new NodeProxyTelemetry({ accessLog: silent });
    mesh.client.onStatus((s) => telemetry.xdsStatus(s));
    mesh.start();
    await mesh.client.whenSynced(10_000);

    // Capture learns which workloads to enrol on node-1.
    expect(local.map((e) => `${e.kind} ${e.workload.uid}`)).toEqual(['added Workload/frontend/web-1']);
    expect(mesh.state.localWorkloads().map((w) => w.name)).toEqual(['web-1']);

    // Outbound: web-1 dials the db VIP.
    const web = mesh.state.workloadByIp('10.200.1.5')!;
    const decision = resolve(mesh.state, { ip: '10.96.0.20', port: 5432 }, web, new RoundRobin().pick);
    expect(decision).toMatchObject({ kind: 'service', address: '10.200.2.7', targetPort: 5432, protocol: 'hbone', endpoint: { name: 'db-0' } });
    expect(resolve(mesh.state, { ip: '192.0.2.1', port: 80 }, web, new RoundRobin().pick)).toEqual({ kind: 'passthrough' });

    // Inbound at db-0: the translated AuthorizationPolicy decides.
    const db = mesh.state.workloadByIp('10.200.2.7')!;
    const fromWeb: PolicyConnection = {
      sourceIdentity: 'spiffe://cluster.local/ns/frontend/sa/web',
      sourceIp: '10.200.1.5',
      destinationIp: '10.200.2.7',
      destinationPort: 5432,
    };
    const fromApi: PolicyConnection = { ...fromWeb, sourceIdentity: 'spiffe://cluster.local/ns/backend/sa/api', sourceIp: '10.200.2.8' };
    const ctx = () => policyContext(mesh.state, mesh.state.workload(db.uid)!, 5432);
    expect(evaluate(fromWeb, ctx())).toMatchObject({ allowed: true, policy: 'backend/allow-frontend' });
    expect(evaluate(fromApi, ctx())).toMatchObject({ allowed: false, reason: expect.stringMatching(/no ALLOW policy matched/) });
    expect(evaluate({ ...fromWeb, destinationPort: 9999 }, policyContext(mesh.state, db, 9999)).allowed).toBe(false);
    // The api workload has no policy selecting it: anything goes.
    const api = mesh.state.workloadByIp('10.200.2.8')!;
    expect(evaluate({ ...fromApi, destinationIp: '10.200.2.8' }, policyContext(mesh.state, api, 8080))).toMatchObject({ allowed: true });

    // A namespace-wide DENY arrives: the open connection from web must be closed.
    const open = [
      { id: 1, destination: db.uid, connection: fromWeb },
      { id: 2, destination: api.uid, connection: { ...fromApi, destinationIp: '10.200.2.8', destinationPort: 8080 } },
    ];
    let changed = 0;
    mesh.state.onChange((c) => (changed += c.authorizations ? 1 : 0));
    await store.apply(denyWeb);
    await until('the DENY policy', () => changed > 0);
    const closing = connectionsNoLongerAllowed(open, (uid, port) => {
      const w = mesh.state.workload(uid);
      return w && policyContext(mesh.state, w, port);
    });
    expect(closing).toEqual([
      { id: 1, verdict: { allowed: false, policy: 'backend/deny-web', rule: 1, reason: 'denied by DENY policy backend/deny-web (rule 1)' } },
    ]);

    // web-1 goes away: capture hears it.
    await store.delete({ kind: 'Workload', namespace: 'frontend', name: 'web-1' });
    await until('web-1 removed', () => local.length === 2);
    expect(local[1]).toMatchObject({ kind: 'removed', workload: { uid: 'Workload/frontend/web-1' } });

    const metrics = await telemetry.registry.metrics();
    expect(metrics).toContain('nodemesh_xds_connected 1');
    expect(metrics).toContain('nodemesh_xds_synced 1');
  });

  it('enforces PeerAuthentication from the control plane: STRICT refuses plaintext, PERMISSIVE admits it, precedence holds', async () => {
    const { store, cp, testCa, target } = await controlPlane();
    const mesh = nodeProxyStream(target, testCa.dir, 'node-2', cp.trustBundlePem!);
    cleanup(() => mesh.stop());
    let paChanges = 0;
    mesh.state.onChange((c) => (paChanges += c.peerAuthentications ? 1 : 0));
    mesh.start();
    await mesh.client.whenSynced(10_000);
    expect(mesh.client.status().waitingFor).toEqual([]);

    const api = () => mesh.state.workloadByIp('10.200.2.8')!;
    // Plaintext from outside the mesh (no peer identity) and an mTLS peer, to api-0 port 8080.
    const plaintext: PolicyConnection = { sourceIp: '192.0.2.10', destinationIp: '10.200.2.8', destinationPort: 8080 };
    const mtls: PolicyConnection = { ...plaintext, sourceIdentity: 'spiffe://cluster.local/ns/frontend/sa/web', sourceIp: '10.200.1.5' };
    const verdict = (c: PolicyConnection, port = 8080) => evaluate({ ...c, destinationPort: port }, policyContext(mesh.state, api(), port));
    // Nothing set: PERMISSIVE.
    expect(verdict(plaintext)).toMatchObject({ allowed: true });

    const pa = (name: string, namespace: string, spec: unknown) => ({
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'PeerAuthentication',
      metadata: { name, namespace },
      spec,
    });
    await store.apply(pa('strict', 'backend', { mtls: { mode: 'STRICT' } }));
    await until('the STRICT PeerAuthentication', () => paChanges === 1);
    const refused = verdict(plaintext);
    expect(refused).toMatchObject({ allowed: false, policy: 'backend/strict' });
    expect(refused.reason).toMatch(/PeerAuthentication backend\/strict requires mutual TLS \(STRICT\) for backend\/api-0 port 8080/);
    expect(verdict(mtls)).toMatchObject({ allowed: true });
    // An open plaintext connection is re-checked and closed under the new mode.
    const closing = connectionsNoLongerAllowed(
      [
        { id: 'p', destination: api().uid, connection: plaintext },
        { id: 'm', destination: api().uid, connection: mtls },
      ],
      (uid, port) => {
        const w = mesh.state.workload(uid);
        return w && policyContext(mesh.state, w, port);
      },
    );
    expect(closing.map((c) => c.id)).toEqual(['p']);

    // A selector policy opens one port of api-0 to plaintext (port level > namespace).
    await store.apply(pa('api-metrics', 'backend', { selector: { matchLabels: { app: 'api' } }, portLevelMtls: { '9090': { mode: 'PERMISSIVE' } } }));
    await until(
      'api-0 listing api-metrics',
      () => api().peerAuthenticationPolicies.includes('backend/api-metrics') && mesh.state.allPeerAuthentications().has('backend/api-metrics'),
    );
    expect(verdict(plaintext, 9090)).toMatchObject({ allowed: true });
    expect(verdict(plaintext, 8080)).toMatchObject({ allowed: false, policy: 'backend/strict' });

    // The namespace goes PERMISSIVE, under a mesh-wide STRICT: the namespace wins.
    await store.applyAll([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'nodemesh-system' } },
      pa('mesh', 'nodemesh-system', { mtls: { mode: 'STRICT' } }),
    ]);
    await store.apply(pa('strict', 'backend', { mtls: { mode: 'PERMISSIVE' } }));
    await until('PERMISSIVE', () => mesh.state.allPeerAuthentications().size === 3 && verdict(plaintext).allowed);
    expect(verdict(plaintext)).toEqual({ allowed: true, reason: 'no ALLOW policy applies to backend/api-0' });
    // Deleted: the mesh-wide STRICT applies again.
    await store.delete({ kind: 'PeerAuthentication', namespace: 'backend', name: 'strict' });
    await until('the namespace policy removed', () => !mesh.state.allPeerAuthentications().has('backend/strict'));
    expect(verdict(plaintext)).toMatchObject({ allowed: false, policy: 'nodemesh-system/mesh' });
  });

  it('names the L7 attributes a policy needs, and refuses traffic to a service whose waypoint is missing', async () => {
    const { store, cp, testCa, target } = await controlPlane();
    const mesh = nodeProxyStream(target, testCa.dir, 'node-1', cp.trustBundlePem!);
    cleanup(() => mesh.stop());
    mesh.start();
    await mesh.client.whenSynced(10_000);
    await store.apply({
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'api-get-only', namespace: 'backend' },
      spec: {
        selector: { matchLabels: { app: 'api' } },
        rules: [{ from: [{ source: { namespaces: ['frontend'] } }], to: [{ operation: { methods: ['GET'] } }] }],
      },
    });
    await until(
      'the L7 policy',
      () => mesh.state.allAuthorizations().has('backend/api-get-only') && mesh.state.workloadByIp('10.200.2.8')!.authorizationPolicies.length > 0,
    );
    const api = mesh.state.workloadByIp('10.200.2.8')!;
    const v = evaluate(
      { sourceIdentity: 'spiffe://cluster.local/ns/frontend/sa/web', sourceIp: '10.200.1.5', destinationIp: '10.200.2.8', destinationPort: 8080 },
      policyContext(mesh.state, api, 8080),
    );
    expect(v.allowed).toBe(false);
    expect(v.policy).toBe('backend/api-get-only');
    expect(v.reason).toMatch(/backend\/api-get-only rule 1 needs L7 attributes \[methods\].*backend\/api-0 has no waypoint/);

    // The db Service asks for a waypoint Gateway that does not exist: refused, not sent direct.
    await store.apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'db', namespace: 'backend', labels: { 'nodemesh.io/use-waypoint': 'db-waypoint' } },
      spec: { clusterIP: '10.96.0.20', selector: { app: 'db' }, ports: [{ port: 5432, targetPort: 5432 }] },
    });
    await until('the db waypoint reference', () => mesh.state.serviceByVip('10.96.0.20')?.waypoint !== undefined);
    const web = mesh.state.workloadByIp('10.200.1.5')!;
    const decision = resolve(mesh.state, { ip: '10.96.0.20', port: 5432 }, web, new RoundRobin().pick);
    expect(decision.kind).toBe('unreachable');
    expect(decision.kind === 'unreachable' && decision.reason).toMatch(
      /its waypoint Gateway backend\/db-waypoint cannot be used \(no Gateway backend\/db-waypoint\)/,
    );
  });

  it('enforces a targetRefs policy on a Service without a waypoint by refusing everything (fail closed), and hands it to the waypoint once there is one', async () => {
    const { store, cp, testCa, target } = await controlPlane();
    const mesh = nodeProxyStream(target, testCa.dir, 'node-2', cp.trustBundlePem!);
    cleanup(() => mesh.stop());
    mesh.start();
    await mesh.client.whenSynced(10_000);
    const db = () => mesh.state.workloadByIp('10.200.2.7')!;
    const api = () => mesh.state.workloadByIp('10.200.2.8')!;
    const fromWeb: PolicyConnection = {
      sourceIdentity: 'spiffe://cluster.local/ns/frontend/sa/web',
      sourceIp: '10.200.1.5',
      destinationIp: '10.200.2.7',
      destinationPort: 5432,
    };
    const verdict = (c: PolicyConnection) => evaluate(c, policyContext(mesh.state, db(), c.destinationPort));
    expect(verdict(fromWeb)).toMatchObject({ allowed: true, policy: 'backend/allow-frontend' });

    // "GET only, from frontend" on the db Service, which has no waypoint to check it.
    await store.apply({
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'db-get', namespace: 'backend' },
      spec: {
        targetRefs: [{ group: '', kind: 'Service', name: 'db' }],
        rules: [{ from: [{ source: { namespaces: ['frontend'] } }], to: [{ operation: { methods: ['GET'] } }] }],
      },
    });
    await until(
      'db-0 listing the targetRefs policy',
      () => mesh.state.allAuthorizations().has('backend/db-get') && db().authorizationPolicies.includes('backend/db-get'),
    );
    const refused = verdict(fromWeb);
    expect(refused).toMatchObject({ allowed: false, policy: 'backend/db-get' });
    expect(refused.reason).toMatch(
      /^denied by AuthorizationPolicy backend\/db-get: it targets Service\/backend\/db \(targetRefs\), which has no usable waypoint.*backend\/db-0 refuses every connection \(fail closed\); attach a waypoint/,
    );
    expect(verdict({ sourceIp: '192.0.2.10', destinationIp: '10.200.2.7', destinationPort: 9999 }).allowed).toBe(false);
    // The open connection from web is closed; api-0 (not behind db) is not affected.
    const open = [
      { id: 'db', destination: db().uid, connection: fromWeb },
      { id: 'api', destination: api().uid, connection: { ...fromWeb, destinationIp: '10.200.2.8', destinationPort: 8080 } },
    ];
    const contextFor = (uid: string, port: number) => {
      const w = mesh.state.workload(uid);
      return w && policyContext(mesh.state, w, port);
    };
    expect(connectionsNoLongerAllowed(open, contextFor)).toEqual([{ id: 'db', verdict: refused }]);

    // The db Service gets a waypoint (an address, so it resolves): the node proxy stops enforcing
    // the policy, the waypoint does — and only the waypoint may now reach db-0.
    await store.delete({ kind: 'AuthorizationPolicy', namespace: 'backend', name: 'allow-frontend' });
    await store.applyAll([
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'Gateway',
        metadata: { name: 'db-waypoint', namespace: 'backend' },
        spec: {
          gatewayClassName: 'nodemesh-waypoint',
          addresses: [{ type: 'IPAddress', value: '10.200.2.60' }],
          listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }],
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'db', namespace: 'backend', labels: { 'nodemesh.io/use-waypoint': 'db-waypoint' } },
        spec: { clusterIP: '10.96.0.20', selector: { app: 'db' }, ports: [{ port: 5432, targetPort: 5432 }] },
      },
    ]);
    await until(
      'the targetRefs policy leaving the node proxy',
      () => !mesh.state.allAuthorizations().has('backend/db-get') && db().authorizationPolicies.length === 0,
    );
    const fromWaypoint: PolicyConnection = { ...fromWeb, sourceIdentity: 'spiffe://cluster.local/ns/backend/sa/db-waypoint', sourceIp: '10.200.2.60' };
    expect(verdict(fromWaypoint)).toEqual({ allowed: true, reason: 'no ALLOW policy applies to backend/db-0' });
    expect(verdict(fromWeb)).toMatchObject({ allowed: false, policy: 'Gateway/backend/db-waypoint' });
  });

  it('is not ready, and says why, when it does not trust the control plane', async () => {
    const { target, testCa } = await controlPlane();
    const other = await openTestCa('mesh-state-other');
    cleanup(() => other.remove());
    const wrongBundle = (await other.ca.servingCertificate({ dnsNames: ['localhost'] })).trustBundlePem;
    const mesh = nodeProxyStream(target, testCa.dir, 'node-1', wrongBundle);
    cleanup(() => mesh.stop());
    mesh.start();
    await until('a failed attempt', () => mesh.client.status().lastError !== undefined);
    expect(mesh.client.status().connected).toBe(false);
    expect(mesh.client.notReadyReason()).toMatch(/waiting for the first xDS response from localhost:\d+ .*UNAVAILABLE/);
    expect(mesh.state.stats().workloads).toBe(0);
  });
});
