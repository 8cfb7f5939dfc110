// The xDS protocol as a raw ADS client sees it (generated grpc-js stubs): per-client views,
// make-before-break ordering, ACK/NACK, nothing sent when nothing changed, unsubscribe and
// resubscribe, reconnect with stable versions, and delta removals.
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../../api/gen/envoy/config/cluster/v3/cluster';
import { Listener } from '../../api/gen/envoy/config/listener/v3/listener';
import { AggregatedDiscoveryServiceClient } from '../../api/gen/envoy/service/discovery/v3/ads';
import { DeltaDiscoveryRequest, type DeltaDiscoveryResponse, type DiscoveryResponse } from '../../api/gen/envoy/service/discovery/v3/discovery';
import { DeepPartialRequest, sotwRequest } from './ads-client';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL } from '../../control/envoy/names';
import { baseMesh, httpRoute, namespace, service, workload } from './fixtures';
import { startControlPlane, type ControlPlane } from './harness';

const WAYPOINT_NODE = 'waypoint~10.200.1.50~wp.default~default.svc.cluster.local';
const PROXYLESS_NODE = 'proxyless~127.0.0.1~client.default~default.svc.cluster.local';
const WEB_CLUSTER = 'outbound|8080||web.default.svc.cluster.local';
const WEB_ROUTE = 'web.default.svc.cluster.local:8080';

let cp: ControlPlane;
let client: AggregatedDiscoveryServiceClient;
const open: grpc.ClientDuplexStream<unknown, unknown>[] = [];

beforeAll(async () => {
  cp = await startControlPlane();
  await cp.store.applyAll(baseMesh());
  client = new AggregatedDiscoveryServiceClient(`127.0.0.1:${cp.port}`, grpc.credentials.createInsecure());
});
afterEach(() => {
  for (const s of open.splice(0)) s.cancel();
});
afterAll(async () => {
  client?.close();
  await cp?.close();
});

/** A SotW stream with a queue of responses. */
function sotw(nodeId: string) {
  const call = client.streamAggregatedResources();
  open.push(call as grpc.ClientDuplexStream<unknown, unknown>);
  const queue: DiscoveryResponse[] = [];
  const waiters: (() => void)[] = [];
  call.on('data', (r: DiscoveryResponse) => {
    queue.push(r);
    waiters.splice(0).forEach((w) => w());
  });
  call.on('error', () => {});
  let first = true;
  return {
    send(req: DeepPartialRequest) {
      call.write(sotwRequest({ ...req, node: first ? { id: nodeId } : undefined }));
      first = false;
    },
    async next(ms = 3000): Promise<DiscoveryResponse> {
      const until = Date.now() + ms;
      while (queue.length === 0) {
        if (Date.now() > until) throw new Error(`no response within ${ms} ms`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
      return queue.shift()!;
    },
    async quiet(ms = 300): Promise<DiscoveryResponse[]> {
      await new Promise((r) => setTimeout(r, ms));
      return queue.splice(0);
    },
  };
}

const names = (r: DiscoveryResponse, decode: (b: Uint8Array) => { name: string }) => r.resources.map((a) => decode(a.value).name).sort();
const ack = (r: DiscoveryResponse, resourceNames: string[] = []): DeepPartialRequest => ({
  typeUrl: r.typeUrl,
  versionInfo: r.versionInfo,
  responseNonce: r.nonce,
  resourceNames,
});

describe('SotW ADS protocol', () => {
  it('gives each client its view: a waypoint its listeners, a proxyless client its api_listeners', async () => {
    const wp = sotw(WAYPOINT_NODE);
    wp.send({ typeUrl: LISTENER_TYPE_URL });
    const lds = await wp.next();
    expect(names(lds, Listener.decode)).toEqual([
      'connect_terminate',
      'inbound-vip|5432|tcp|web.default.svc.cluster.local',
      'inbound-vip|8080|http|web.default.svc.cluster.local',
      'inbound-vip|9090|http|web.default.svc.cluster.local',
    ]);
    wp.send({ typeUrl: CLUSTER_TYPE_URL });
    const cds = await wp.next();
    expect(names(cds, Cluster.decode)).toContain('inbound-vip|8080|http|web.default.svc.cluster.local');
    expect(names(cds, Cluster.decode)).toContain(WEB_CLUSTER);

    const pl = sotw(PROXYLESS_NODE);
    pl.send({ typeUrl: LISTENER_TYPE_URL });
    const plLds = await pl.next();
    const plNames = names(plLds, Listener.decode);
    expect(plNames).toContain('web.default.svc.cluster.local:9090');
    expect(plNames.some((n) => n.startsWith('inbound-vip') || n === 'connect_terminate')).toBe(false);
    pl.send({ typeUrl: CLUSTER_TYPE_URL });
    expect(names(await pl.next(), Cluster.decode).some((n) => n.startsWith('inbound-vip'))).toBe(false);
  });

  it('pushes a change in make-before-break order (CDS, EDS, LDS, RDS) and nothing when nothing changed', async () => {
    const s = sotw(WAYPOINT_NODE);
    const subscriptions: DeepPartialRequest[] = [
      { typeUrl: ROUTE_TYPE_URL, resourceNames: [WEB_ROUTE] },
      { typeUrl: LISTENER_TYPE_URL },
      { typeUrl: ENDPOINT_TYPE_URL, resourceNames: [WEB_CLUSTER] },
      { typeUrl: CLUSTER_TYPE_URL },
    ];
    for (const r of subscriptions) s.send(r);
    const first = [await s.next(), await s.next(), await s.next(), await s.next()];
    for (const r of first) s.send(ack(r, subscriptions.find((x) => x.typeUrl === r.typeUrl)!.resourceNames ?? []));
    expect(await s.quiet()).toEqual([]);

    // One write that changes all four: a new Service on the waypoint (CDS, LDS), a new endpoint
    // for web (EDS) and a route for web (RDS).
    await cp.store.applyAll([
      service('api', '10.96.0.30', [{ name: 'http', port: 80 }], { labels: { 'nodemesh.io/use-waypoint': 'wp' } }),
      workload('web-d', '10.200.1.11', { app: 'web' }, { ports: [{ name: 'http-web', port: 8000 }] }),
      httpRoute('r', { parentRefs: [{ name: 'web', port: 8080 }], rules: [{ timeouts: { request: '3s' }, backendRefs: [{ name: 'web', port: 8080 }] }] }),
    ]);
    const pushed = [await s.next(), await s.next(), await s.next(), await s.next()];
    expect(pushed.map((r) => r.typeUrl)).toEqual([CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL]);
    for (const r of pushed) {
      const before = first.find((f) => f.typeUrl === r.typeUrl)!;
      expect(r.versionInfo).not.toBe(before.versionInfo);
      expect(r.nonce).not.toBe(before.nonce);
      s.send(ack(r, subscriptions.find((x) => x.typeUrl === r.typeUrl)!.resourceNames ?? []));
    }
    // A change that does not concern this client's resources: nothing is sent.
    await cp.store.apply(namespace('unrelated', { team: 'x' }));
    expect(await s.quiet()).toEqual([]);
    const view = cp.sotw.clients().find((c) => c.nodeId === WAYPOINT_NODE && c.types[ROUTE_TYPE_URL]?.acked?.version === pushed[3]!.versionInfo);
    expect(view).toBeDefined();
  });

  it('NACK: logs, counts, keeps the acked version, does not resend the rejected one', async () => {
    const s = sotw(WAYPOINT_NODE);
    s.send({ typeUrl: CLUSTER_TYPE_URL });
    const good = await s.next();
    s.send(ack(good));
    await cp.store.apply(service('extra', '10.96.0.31', [{ name: 'http', port: 81 }]));
    const rejected = await s.next();
    const nacks = async () => (await cp.metrics.nacks.get()).values.find((v) => v.labels.type_url === CLUSTER_TYPE_URL)?.value ?? 0;
    const before = await nacks();
    s.send({ ...ack(rejected), versionInfo: good.versionInfo, errorDetail: { code: 3, message: 'cluster extra: not acceptable' } });
    expect(await s.quiet()).toEqual([]);
    expect(await nacks()).toBe(before + 1);
    const t = cp.sotw.clients().find((c) => c.types[CLUSTER_TYPE_URL]?.rejected)!.types[CLUSTER_TYPE_URL]!;
    expect(t.acked?.version).toBe(good.versionInfo);
    expect(t.rejected).toMatchObject({ version: rejected.versionInfo, message: 'cluster extra: not acceptable' });
    // Unrelated change in another type: the rejected CDS version is not pushed again.
    await cp.store.apply(workload('web-e', '10.200.1.12', { app: 'web' }, { ports: [{ name: 'http-web', port: 8000 }] }));
    expect((await s.quiet()).filter((r) => r.typeUrl === CLUSTER_TYPE_URL)).toEqual([]);
    // A new version is.
    await cp.store.apply(service('extra2', '10.96.0.32', [{ name: 'http', port: 82 }]));
    const next = await s.next();
    expect(next.typeUrl).toBe(CLUSTER_TYPE_URL);
    expect(next.versionInfo).not.toBe(rejected.versionInfo);
  });

  it('answers unsubscribe and resubscribe of named resources; ignores stale nonces', async () => {
    const s = sotw(WAYPOINT_NODE);
    const both = [WEB_ROUTE, 'web.default.svc.cluster.local:9090'];
    s.send({ typeUrl: ROUTE_TYPE_URL, resourceNames: both });
    const r1 = await s.next();
    expect(r1.resources).toHaveLength(2);
    s.send(ack(r1, both));
    s.send(ack(r1, [WEB_ROUTE]));
    const r2 = await s.next();
    expect(r2.resources).toHaveLength(1);
    // A request with the old nonce is stale and ignored.
    s.send({ ...ack(r1, both) });
    expect(await s.quiet()).toEqual([]);
    s.send(ack(r2, both));
    const r3 = await s.next();
    expect(r3.resources).toHaveLength(2);
    expect(r3.versionInfo).toBe(r1.versionInfo);
  });

  it('reconnect: a new stream gets the same versions for the same content', async () => {
    const a = sotw(PROXYLESS_NODE);
    a.send({ typeUrl: CLUSTER_TYPE_URL });
    const first = await a.next();
    open.pop()!.cancel();
    const b = sotw(PROXYLESS_NODE);
    b.send({ typeUrl: CLUSTER_TYPE_URL, versionInfo: first.versionInfo });
    const again = await b.next();
    expect(again.versionInfo).toBe(first.versionInfo);
    expect(again.resources.length).toBe(first.resources.length);
  });
});

describe('Delta ADS for the Envoy types', () => {
  it('sends removals when a Service goes away, and only what changed', async () => {
    const call = client.deltaAggregatedResources();
    open.push(call as grpc.ClientDuplexStream<unknown, unknown>);
    const queue: DeltaDiscoveryResponse[] = [];
    call.on('data', (r: DeltaDiscoveryResponse) => queue.push(r));
    call.on('error', () => {});
    const next = async () => {
      const until = Date.now() + 3000;
      while (queue.length === 0) {
        if (Date.now() > until) throw new Error('no delta response');
        await new Promise((r) => setTimeout(r, 20));
      }
      return queue.shift()!;
    };
    await cp.store.apply(service('gone', '10.96.0.40', [{ name: 'http', port: 80 }]));
    const req = (r: { node?: { id: string }; responseNonce?: string }) => call.write(DeltaDiscoveryRequest.fromPartial({ typeUrl: CLUSTER_TYPE_URL, ...r }));
    req({ node: { id: PROXYLESS_NODE } });
    const initial = await next();
    expect(initial.resources.map((r) => r.name)).toContain('outbound|80||gone.default.svc.cluster.local');
    req({ responseNonce: initial.nonce });
    await cp.store.delete({ kind: 'Service', namespace: 'default', name: 'gone' });
    const removal = await next();
    expect(removal.removedResources).toEqual(['outbound|80||gone.default.svc.cluster.local']);
    expect(removal.resources).toEqual([]);
  });
});
