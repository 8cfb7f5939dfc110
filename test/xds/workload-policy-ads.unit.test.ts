// PeerAuthentication, L7 hints and unresolved waypoints over the real delta ADS server: a config
// store, the real translation and gRPC server on loopback, and a real @grpc/grpc-js client that
// follows several workload API types on one stream. Also: a targetRefs policy on a Service without
// a waypoint, published to node proxies (fail closed) until the Service's waypoint resolves.
import { describe, expect, it } from 'vitest';
import type { DeltaDiscoveryResponse } from '../../api/gen/envoy/service/discovery/v3/discovery';
import {
  Address,
  Authorization,
  AuthorizationAction,
  AuthorizationScope,
  MtlsMode,
  PeerAuthentication,
  PeerAuthenticationScope,
} from '../../api/gen/nodemesh/workload/v1/workload';
import { MemoryStore } from '../../control/store/base-store';
import { ipText } from '../../control/workload/addresses';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL, PEER_AUTHENTICATION_TYPE_URL } from '../../control/workload/publisher';
import { cleanupAfterEach } from '../support/cleanups';
import { servePlaintext } from '../support/control-plane';
import { workload } from '../envoy/fixtures';
import { DeltaClient } from './delta-client';

const cleanup = cleanupAfterEach();

const peerAuthentication = (name: string, namespace: string, spec: unknown) => ({
  apiVersion: 'security.nodemesh.io/v1alpha1',
  kind: 'PeerAuthentication',
  metadata: { name, namespace },
  spec,
});

async function setup() {
  const store = new MemoryStore();
  await store.applyAll([
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default', labels: { 'nodemesh.io/dataplane-mode': 'ambient' } } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'nodemesh-system' } },
    workload('web-1', '10.200.1.5', { app: 'web' }),
    workload('db-1', '10.200.1.6', { app: 'db' }),
  ]);
  const grpcSide = await servePlaintext(store);
  cleanup(async () => {
    await grpcSide.stop();
    await store.close();
  });
  const c = new DeltaClient(`127.0.0.1:${grpcSide.ports.plaintext}`);
  cleanup(() => c.close());
  return { store, c };
}

/**
 * Responses (each ACKed) until every type in `wanted` has delivered the named resources or
 * removals (or, with neither given, any response); returns what arrived per type.
 */
async function until(c: DeltaClient, wanted: Record<string, { names?: string[]; removed?: string[] }>): Promise<Map<string, DeltaDiscoveryResponse[]>> {
  const got = new Map<string, DeltaDiscoveryResponse[]>();
  const done = () =>
    Object.entries(wanted).every(([type, w]) => {
      const rs = got.get(type) ?? [];
      const names = new Set(rs.flatMap((r) => r.resources.map((x) => x.name)));
      const removed = new Set(rs.flatMap((r) => r.removedResources));
      if (!w.names && !w.removed) return rs.length > 0; // any response of the type
      return (w.names ?? []).every((n) => names.has(n)) && (w.removed ?? []).every((n) => removed.has(n));
    });
  const deadline = Date.now() + 5000;
  while (!done()) {
    const r = await c.next(Math.max(1, deadline - Date.now()));
    c.ack(r);
    got.set(r.typeUrl, [...(got.get(r.typeUrl) ?? []), r]);
  }
  return got;
}

function decoded<T>(rs: DeltaDiscoveryResponse[] | undefined, name: string, codec: { decode(b: Uint8Array): T }): T {
  const all = (rs ?? []).flatMap((r) => r.resources).filter((x) => x.name === name);
  const last = all[all.length - 1];
  if (!last?.resource) throw new Error(`${name} did not arrive`);
  return codec.decode(last.resource.value);
}

const workloadOf = (a: Address) => {
  if (a.type?.$case !== 'workload') throw new Error('not a workload');
  return a.type.value;
};
const serviceOf = (a: Address) => {
  if (a.type?.$case !== 'service') throw new Error('not a service');
  return a.type.value;
};

describe('PeerAuthentication over delta ADS', () => {
  it('arrives, changes and is removed; a selector policy also updates the workloads it selects', async () => {
    const { store, c } = await setup();
    c.send({ typeUrl: ADDRESS_TYPE_URL });
    c.send({ typeUrl: PEER_AUTHENTICATION_TYPE_URL });
    const initial = await until(c, { [ADDRESS_TYPE_URL]: { names: ['Workload/default/web-1'] }, [PEER_AUTHENTICATION_TYPE_URL]: {} });
    // The type is served (answered, empty) even before any PeerAuthentication exists.
    expect(initial.get(PEER_AUTHENTICATION_TYPE_URL)?.[0]?.resources).toEqual([]);

    // A namespace-wide STRICT arrives.
    await store.apply(peerAuthentication('strict', 'default', { mtls: { mode: 'STRICT' } }));
    let got = await until(c, { [PEER_AUTHENTICATION_TYPE_URL]: { names: ['default/strict'] } });
    expect(decoded(got.get(PEER_AUTHENTICATION_TYPE_URL), 'default/strict', PeerAuthentication)).toMatchObject({
      name: 'strict',
      namespace: 'default',
      scope: PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_NAMESPACE,
      mode: MtlsMode.MTLS_MODE_STRICT,
    });
    const v1 = got.get(PEER_AUTHENTICATION_TYPE_URL)![0]!.resources[0]!.version;
    // A namespace policy does not touch workloads.
    expect(got.has(ADDRESS_TYPE_URL)).toBe(false);

    // It changes to PERMISSIVE: a new version, nothing else.
    await store.apply(peerAuthentication('strict', 'default', { mtls: { mode: 'PERMISSIVE' } }));
    got = await until(c, { [PEER_AUTHENTICATION_TYPE_URL]: { names: ['default/strict'] } });
    expect(decoded(got.get(PEER_AUTHENTICATION_TYPE_URL), 'default/strict', PeerAuthentication).mode).toBe(MtlsMode.MTLS_MODE_PERMISSIVE);
    expect(got.get(PEER_AUTHENTICATION_TYPE_URL)![0]!.resources[0]!.version).not.toBe(v1);

    // A mesh-wide policy and a selector policy with a port-level mode: the selected workload is
    // re-sent listing it, the other workload is not re-sent.
    await store.apply(peerAuthentication('mesh', 'nodemesh-system', { mtls: { mode: 'STRICT' } }));
    await store.apply(peerAuthentication('db', 'default', { selector: { matchLabels: { app: 'db' } }, portLevelMtls: { '5432': { mode: 'STRICT' } } }));
    got = await until(c, {
      [PEER_AUTHENTICATION_TYPE_URL]: { names: ['nodemesh-system/mesh', 'default/db'] },
      [ADDRESS_TYPE_URL]: { names: ['Workload/default/db-1'] },
    });
    expect(decoded(got.get(PEER_AUTHENTICATION_TYPE_URL), 'nodemesh-system/mesh', PeerAuthentication).scope).toBe(
      PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_MESH,
    );
    expect(decoded(got.get(PEER_AUTHENTICATION_TYPE_URL), 'default/db', PeerAuthentication)).toMatchObject({
      scope: PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_WORKLOAD_SELECTOR,
      portLevelMtls: { 5432: MtlsMode.MTLS_MODE_STRICT },
    });
    expect(workloadOf(decoded(got.get(ADDRESS_TYPE_URL), 'Workload/default/db-1', Address)).peerAuthenticationPolicies).toEqual(['default/db']);
    expect(got.get(ADDRESS_TYPE_URL)!.flatMap((r) => r.resources.map((x) => x.name))).not.toContain('Workload/default/web-1');

    // Removed: the client hears the removal, and the workload no longer lists it.
    await store.delete({ kind: 'PeerAuthentication', namespace: 'default', name: 'db' });
    got = await until(c, { [PEER_AUTHENTICATION_TYPE_URL]: { removed: ['default/db'] }, [ADDRESS_TYPE_URL]: { names: ['Workload/default/db-1'] } });
    expect(workloadOf(decoded(got.get(ADDRESS_TYPE_URL), 'Workload/default/db-1', Address)).peerAuthenticationPolicies).toEqual([]);
    await store.delete({ kind: 'PeerAuthentication', namespace: 'default', name: 'strict' });
    got = await until(c, { [PEER_AUTHENTICATION_TYPE_URL]: { removed: ['default/strict'] } });
    await c.expectNothing(200);
  });
});

describe('L7 hints and unresolved waypoints over delta ADS', () => {
  it('carries the L7 attributes of Authorization rules', async () => {
    const { store, c } = await setup();
    c.send({ typeUrl: AUTHORIZATION_TYPE_URL });
    await until(c, { [AUTHORIZATION_TYPE_URL]: {} });
    await store.apply({
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'get-only', namespace: 'default' },
      spec: { rules: [{ from: [{ source: { namespaces: ['default'] } }], to: [{ operation: { methods: ['GET'], paths: ['/api/*'] } }] }] },
    });
    const got = await until(c, { [AUTHORIZATION_TYPE_URL]: { names: ['default/get-only'] } });
    const authz = decoded(got.get(AUTHORIZATION_TYPE_URL), 'default/get-only', Authorization);
    expect(authz.rules).toHaveLength(1);
    expect(authz.rules[0]!.l7Attributes).toEqual(['methods', 'paths']);
  });

  it('publishes a missing waypoint as unresolved, then resolved once the Gateway exists', async () => {
    const { store, c } = await setup();
    await store.apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'default', labels: { 'nodemesh.io/use-waypoint': 'wp' } },
      spec: { clusterIP: '10.96.0.12', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
    });
    const web = 'default/web.default.svc.cluster.local';
    c.send({ typeUrl: ADDRESS_TYPE_URL });
    let got = await until(c, { [ADDRESS_TYPE_URL]: { names: [web] } });
    const unresolved = serviceOf(decoded(got.get(ADDRESS_TYPE_URL), web, Address)).waypoint!;
    expect(unresolved).toMatchObject({ gateway: 'default/wp', unresolvedReason: 'no Gateway default/wp' });
    expect(unresolved.destination).toBeUndefined();

    await store.apply({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'wp', namespace: 'default' },
      spec: {
        gatewayClassName: 'nodemesh-waypoint',
        addresses: [{ type: 'IPAddress', value: '10.200.1.60' }],
        listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }],
      },
    });
    got = await until(c, { [ADDRESS_TYPE_URL]: { names: [web] } });
    const resolved = serviceOf(decoded(got.get(ADDRESS_TYPE_URL), web, Address)).waypoint!;
    expect(resolved.unresolvedReason).toBe('');
    expect(resolved.destination?.$case === 'address' && ipText(resolved.destination.value.address)).toBe('10.200.1.60');
  });
});

describe('targetRefs policy on a Service without a waypoint over delta ADS', () => {
  it('arrives as DENY-everything for the Service’s workloads, and is removed once the Service’s waypoint resolves', async () => {
    const { store, c } = await setup();
    const webSvc = (labels?: Record<string, string>) => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'default', labels },
      spec: { clusterIP: '10.96.0.12', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
    });
    await store.apply(webSvc());
    c.send({ typeUrl: ADDRESS_TYPE_URL });
    c.send({ typeUrl: AUTHORIZATION_TYPE_URL });
    await until(c, { [ADDRESS_TYPE_URL]: { names: ['Workload/default/web-1'] }, [AUTHORIZATION_TYPE_URL]: {} });

    // An ALLOW GET policy on the Service, which has no waypoint: nobody could check GET.
    await store.apply({
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'web-get', namespace: 'default' },
      spec: { targetRefs: [{ group: '', kind: 'Service', name: 'web' }], rules: [{ to: [{ operation: { methods: ['GET'] } }] }] },
    });
    let got = await until(c, { [AUTHORIZATION_TYPE_URL]: { names: ['default/web-get'] }, [ADDRESS_TYPE_URL]: { names: ['Workload/default/web-1'] } });
    expect(decoded(got.get(AUTHORIZATION_TYPE_URL), 'default/web-get', Authorization)).toEqual(
      Authorization.fromPartial({
        name: 'web-get',
        namespace: 'default',
        scope: AuthorizationScope.AUTHORIZATION_SCOPE_WORKLOAD_SELECTOR,
        action: AuthorizationAction.AUTHORIZATION_ACTION_DENY,
        rules: [{ clauses: [], l7Attributes: ['targetRefs:Service/default/web'] }],
      }),
    );
    expect(workloadOf(decoded(got.get(ADDRESS_TYPE_URL), 'Workload/default/web-1', Address)).authorizationPolicies).toEqual(['default/web-get']);
    // db-1 is not behind the Service: not re-sent.
    expect(got.get(ADDRESS_TYPE_URL)!.flatMap((r) => r.resources.map((x) => x.name))).not.toContain('Workload/default/db-1');

    // The Service gets a waypoint that resolves: the waypoint enforces the policy, node proxies stop.
    await store.applyAll([
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'Gateway',
        metadata: { name: 'wp', namespace: 'default' },
        spec: {
          gatewayClassName: 'nodemesh-waypoint',
          addresses: [{ type: 'IPAddress', value: '10.200.1.60' }],
          listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }],
        },
      },
      webSvc({ 'nodemesh.io/use-waypoint': 'wp' }),
    ]);
    got = await until(c, { [AUTHORIZATION_TYPE_URL]: { removed: ['default/web-get'] }, [ADDRESS_TYPE_URL]: { names: ['Workload/default/web-1'] } });
    expect(workloadOf(decoded(got.get(ADDRESS_TYPE_URL), 'Workload/default/web-1', Address)).authorizationPolicies).toEqual([]);

    // The waypoint goes away (unresolved): node proxies enforce it again.
    await store.delete({ kind: 'Gateway', namespace: 'default', name: 'wp' });
    got = await until(c, { [AUTHORIZATION_TYPE_URL]: { names: ['default/web-get'] }, [ADDRESS_TYPE_URL]: { names: ['Workload/default/web-1'] } });
    expect(workloadOf(decoded(got.get(ADDRESS_TYPE_URL), 'Workload/default/web-1', Address)).authorizationPolicies).toEqual(['default/web-get']);
  });
});
