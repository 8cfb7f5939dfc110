// The delta ADS client against the control plane's real delta server on loopback: a real config
// store and translation (workload API), or the server's shared cache fed directly when a test
// needs resources the translation would never produce (undecodable bytes).
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { DeltaDiscoveryResponse } from '../../api/gen/envoy/service/discovery/v3/discovery';
import { Address, Authorization } from '../../api/gen/nodemesh/workload/v1/workload';
import { ControlGrpcServer, type ControlGrpc } from '../../control/grpc';
import { MemoryStore } from '../../control/store/base-store';
import { SharedCache } from '../../control/xds/cache';
import { xdsResource } from '../../control/xds/resource';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL } from '../../control/workload/publisher';
import { backoffDelay } from './backoff';
import { DeltaXdsClient } from './client';
import type { ResourceChange, ResourceType } from './types';
import { cleanupAfterEach } from '../../test/support/cleanups';
import { servePlaintext, silentLogger as silent } from '../../test/support/control-plane';
import { until } from '../../test/support/until';
import { ambientWeb, workload } from '../../test/envoy/fixtures';

const cleanup = cleanupAfterEach();

const AddressType: ResourceType<Address> = {
  typeUrl: ADDRESS_TYPE_URL,
  decode: (b) => Address.decode(b),
  validate: (name, a) => (a.type ? undefined : `${name} is neither a workload nor a service`),
};
const AuthorizationType: ResourceType<Authorization> = { typeUrl: AUTHORIZATION_TYPE_URL, decode: (b) => Authorization.decode(b) };

async function seededStore(): Promise<MemoryStore> {
  const store = new MemoryStore();
  await store.applyAll(ambientWeb());
  return store;
}

async function serve(store: MemoryStore, port = 0): Promise<ControlGrpc> {
  const cp = await servePlaintext(store, { port });
  cleanup(() => cp.stop());
  return cp;
}

function client(target: string, types: ResourceType<unknown>[] = [AddressType as ResourceType<unknown>]) {
  const c = new DeltaXdsClient({
    target,
    credentials: { kind: 'plaintext' },
    node: { id: 'node-1~test', cluster: 'lab' },
    types: types.map((type) => ({ type })),
    backoff: { initialMs: 50, maxMs: 200 },
    logger: silent,
  });
  const changes: ResourceChange<unknown>[] = [];
  const responses: Array<{ r: DeltaDiscoveryResponse; accepted: boolean; message?: string }> = [];
  c.onChange((ch) => changes.push(ch));
  c.onResponse((r, o) => responses.push({ r, ...o }));
  cleanup(() => c.stop());
  return { c, changes, responses };
}

const names = (m: ReadonlyMap<string, unknown>) => [...m.keys()].sort();

describe('DeltaXdsClient against the control plane delta server', () => {
  it('receives the full state, then incremental adds and removals, ACKing each response', async () => {
    const store = await seededStore();
    const cp = await serve(store);
    const { c, changes } = client(`127.0.0.1:${cp.ports.plaintext}`, [AddressType as ResourceType<unknown>, AuthorizationType as ResourceType<unknown>]);
    expect(c.notReadyReason()).toMatch(/waiting for the first xDS response/);
    c.start();
    await c.whenSynced(5000);
    expect(c.notReadyReason()).toBeUndefined();
    expect(names(c.resources(AddressType))).toEqual(['Workload/default/web-1', 'Workload/default/web-2', 'default/web.default.svc.cluster.local']);
    const web1 = c.get(AddressType, 'Workload/default/web-1')!;
    expect(web1.value.type?.$case).toBe('workload');
    expect(c.resources(AuthorizationType).size).toBe(0);
    expect(c.status()).toMatchObject({ connected: true, synced: true, streams: 1, nacks: 0 });

    changes.length = 0;
    await store.apply(workload('web-3', '10.200.1.7', { app: 'web' }));
    await until('web-3', () => c.get(AddressType, 'Workload/default/web-3') !== undefined);
    expect(changes).toHaveLength(1);
    expect(changes[0]!.updated.map((u) => u.name)).toEqual(['Workload/default/web-3']);
    expect(changes[0]!.updated[0]!.previous).toBeUndefined();

    changes.length = 0;
    await store.delete({ kind: 'Workload', namespace: 'default', name: 'web-1' });
    await until('web-1 removed', () => c.get(AddressType, 'Workload/default/web-1') === undefined);
    expect(changes).toHaveLength(1);
    expect(changes[0]!.removed.map((r) => r.name)).toEqual(['Workload/default/web-1']);
    const gone = changes[0]!.removed[0]!.previous as Address;
    expect(gone.type?.$case === 'workload' && gone.type.value.name).toBe('web-1');

    // A changed resource comes with its previous value.
    changes.length = 0;
    await store.apply(workload('web-2', '10.200.1.66', { app: 'web' }));
    await until('web-2 changed', () => changes.length > 0);
    const upd = changes[0]!.updated[0]! as { value: Address; previous?: Address };
    expect(upd.previous?.type?.$case).toBe('workload');
    expect(upd.value.type?.$case === 'workload' && [...upd.value.type.value.addresses[0]!]).toEqual([10, 200, 1, 66]);

    // Every accepted response was ACKed with its nonce: the server counted them.
    const acks = c.status().acks;
    expect(acks).toBeGreaterThanOrEqual(5);
    const clients = cp.server.delta.clients();
    expect(clients).toHaveLength(1);
    expect(clients[0]!.nodeId).toBe('node-1~test');
  });

  it('NACKs a response with an undecodable or invalid resource and keeps the last good state', async () => {
    const T = ADDRESS_TYPE_URL;
    const cache = new SharedCache([T]);
    const good = (name: string, ip: number[]) =>
      xdsResource(
        T,
        name,
        Address.encode(Address.fromPartial({ type: { $case: 'workload', value: { uid: name, name, addresses: [Buffer.from(ip)] } } })).finish(),
      );
    cache.replace(T, new Map([['a', good('a', [10, 0, 0, 1])]]));
    const registry = new Registry();
    const server = new ControlGrpcServer({ source: cache, plaintext: { host: '127.0.0.1', port: 0 }, registry, logger: silent });
    const ports = await server.start();
    cleanup(() => server.stop());
    const { c, responses, changes } = client(`127.0.0.1:${ports.plaintext}`);
    c.start();
    await c.whenSynced(5000);
    expect(names(c.resources(AddressType))).toEqual(['a']);

    // Bytes that are not an Address (a truncated length-delimited field), next to a good change.
    cache.update(T, [good('a', [10, 0, 0, 2]), xdsResource(T, 'broken', Uint8Array.from([0x0a, 0x7f, 0x01]))]);
    await until('a NACK', () => responses.some((x) => !x.accepted));
    const nacked = responses.find((x) => !x.accepted)!;
    expect(nacked.message).toMatch(/broken: cannot be decoded/);
    // Nothing from the rejected response was applied, not even the good part.
    const a = c.get(AddressType, 'a')!.value;
    expect(a.type?.$case === 'workload' && [...a.type.value.addresses[0]!]).toEqual([10, 0, 0, 1]);
    expect(c.get(AddressType, 'broken')).toBeUndefined();
    expect(c.status().nacks).toBe(1);
    expect(c.status().lastNack?.message).toMatch(/broken/);
    // The server counts the NACK when the client's next request reaches it: read the metric afresh each time.
    const nackCount = async () => (await registry.getSingleMetric('nodemesh_xds_nacks_total')!.get()).values[0]?.value ?? 0;
    await until('server counted the NACK', async () => (await nackCount()) > 0);
    expect(await nackCount()).toBe(1);

    // The validator hook: an Address that is neither workload nor service is refused too.
    cache.update(T, [xdsResource(T, 'empty', Address.encode(Address.fromPartial({})).finish())], ['broken']);
    await until('second NACK', () => c.status().nacks === 2);
    expect(c.status().lastNack?.message).toMatch(/empty is neither a workload nor a service/);
    expect(names(c.resources(AddressType))).toEqual(['a']);

    // Once the control plane sends something valid again, it is applied.
    changes.length = 0;
    cache.update(T, [good('c', [10, 0, 0, 3])], ['empty']);
    await until('c', () => c.get(AddressType, 'c') !== undefined);
    expect(names(c.resources(AddressType))).toEqual(['a', 'c']);
    expect(c.status().connected).toBe(true);
  });

  it('reconnects with backoff and initial_resource_versions; only what changed is resent', async () => {
    const store = await seededStore();
    const first = await serve(store);
    const port = first.ports.plaintext!;
    const { c, responses, changes } = client(`127.0.0.1:${port}`);
    c.start();
    await c.whenSynced(5000);
    expect(c.resources(AddressType).size).toBe(3);

    await first.stop();
    await until('disconnected', () => !c.status().connected);
    expect(c.notReadyReason()).toBeUndefined(); // still ready on the last good state
    expect(c.resources(AddressType).size).toBe(3);

    // While the control plane is away: web-2 changes, web-1 goes, web-9 appears.
    await store.apply(workload('web-2', '10.200.1.66', { app: 'web' }));
    await store.delete({ kind: 'Workload', namespace: 'default', name: 'web-1' });
    await store.apply(workload('web-9', '10.200.1.9', { app: 'other' }));
    responses.length = 0;
    changes.length = 0;
    await serve(store, port);
    await until('reconnected', () => c.status().connected && responses.length > 0, 10_000);

    const resent = responses.flatMap((x) => x.r.resources.map((r) => r.name)).sort();
    expect(resent).toEqual(['Workload/default/web-2', 'Workload/default/web-9']);
    expect(responses.flatMap((x) => x.r.removedResources)).toEqual(['Workload/default/web-1']);
    expect(names(c.resources(AddressType))).toEqual(['Workload/default/web-2', 'Workload/default/web-9', 'default/web.default.svc.cluster.local']);
    expect(changes[0]!.firstOnStream).toBe(true);
    expect(c.status().streams).toBeGreaterThanOrEqual(2);
  });

  it('follows named subscriptions and drops unsubscribed names', async () => {
    const store = await seededStore();
    const cp = await serve(store);
    const c = new DeltaXdsClient({
      target: `127.0.0.1:${cp.ports.plaintext}`,
      credentials: { kind: 'plaintext' },
      node: { id: 'waypoint-1' },
      types: [{ type: AddressType as ResourceType<unknown>, subscription: { wildcard: false, names: ['Workload/default/web-1'] } }],
      logger: silent,
    });
    cleanup(() => c.stop());
    c.start();
    await c.whenSynced(5000);
    expect(names(c.resources(AddressType))).toEqual(['Workload/default/web-1']);
    c.subscribe(ADDRESS_TYPE_URL, ['default/web.default.svc.cluster.local']);
    await until('service', () => c.resources(AddressType).size === 2);
    c.unsubscribe(ADDRESS_TYPE_URL, ['Workload/default/web-1']);
    expect(names(c.resources(AddressType))).toEqual(['default/web.default.svc.cluster.local']);
    // Changes to an unsubscribed name are not sent any more.
    await store.apply(workload('web-1', '10.200.1.55', { app: 'web' }));
    await new Promise((r) => setTimeout(r, 200));
    expect(c.get(AddressType, 'Workload/default/web-1')).toBeUndefined();
  });

  it('reports why it is not ready while the control plane is unreachable', async () => {
    const { c } = client('127.0.0.1:1');
    c.start();
    await until('an error', () => c.status().lastError !== undefined);
    expect(c.status().connected).toBe(false);
    expect(c.notReadyReason()).toMatch(/waiting for the first xDS response from 127\.0\.0\.1:1 .*UNAVAILABLE/);
    await expect(c.whenSynced(100)).rejects.toThrow(/no complete xDS state/);
  });
});

describe('backoffDelay', () => {
  it('grows exponentially to the cap, with jitter in the upper half', () => {
    const mid = () => 0.5;
    expect(backoffDelay(0, { initialMs: 100, maxMs: 1000 }, () => 0)).toBe(50);
    expect(backoffDelay(0, { initialMs: 100, maxMs: 1000 }, () => 1)).toBe(100);
    expect(backoffDelay(3, { initialMs: 100, maxMs: 1000 }, mid)).toBe(600);
    expect(backoffDelay(50, { initialMs: 100, maxMs: 1000 }, () => 1)).toBe(1000);
  });
});
