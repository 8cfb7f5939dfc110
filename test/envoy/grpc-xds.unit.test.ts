// Real proxyless gRPC clients (@grpc/grpc-js-xds, SotW ADS) against the control plane's xDS server
// on 127.0.0.1, reaching real grpc-js backends registered as Workloads. One bootstrap per file
// (grpc-js-xds caches it), so every scenario shares this control plane.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RouteConfiguration } from '../../api/gen/envoy/config/route/v3/route';
import { ROUTE_TYPE_URL } from '../../control/envoy/names';
import { xdsResource, type XdsResource } from '../../control/xds/resource';
import type { ChangeListener, ResourceSource } from '../../control/xds/source';
import { echoBackend, echoMesh, echoRoute } from './fixtures';
import { eventually, startBackend, startControlPlane, who, type Backend, type ControlPlane } from './harness';

const HOST = 'echo.default.svc.cluster.local';
const TARGET = `xds:///${HOST}:9090`;
const ROUTE_NAME = `${HOST}:9090`;

let cp: ControlPlane;
let v1: Backend;
let v2: Backend;
let client: grpc.Client;
/** When set, the RouteConfiguration the test source serves instead of the real one. */
let badRoute: XdsResource | undefined;

const overrideListeners = new Set<ChangeListener>();
function withOverride(inner: ResourceSource): ResourceSource {
  return {
    typeUrls: inner.typeUrls,
    systemVersion: (t) => inner.systemVersion(t),
    onChange: (l) => {
      overrideListeners.add(l);
      const off = inner.onChange(l);
      return () => {
        overrideListeners.delete(l);
        off();
      };
    },
    resources: (typeUrl, c) => {
      const real = inner.resources(typeUrl, c);
      if (typeUrl !== ROUTE_TYPE_URL || !badRoute || !real) return real;
      return new Map([...real, [ROUTE_NAME, badRoute]]);
    },
  };
}

const route = echoRoute;
const to = echoBackend;

beforeAll(async () => {
  cp = await startControlPlane(withOverride);
  v1 = await startBackend('echo-v1', '127.0.0.21');
  v2 = await startBackend('echo-v2', '127.0.0.22');
  await cp.store.applyAll(echoMesh(v1, v2));
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
    xds_servers: [{ server_uri: `127.0.0.1:${cp.port}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: 'proxyless~127.0.0.1~test.default~default.svc.cluster.local', cluster: 'test', locality: {}, metadata: {} },
  });
  delete process.env.GRPC_XDS_BOOTSTRAP;
  // grpc-js-xds reads the bootstrap when it is first used, after register().
  (await import('@grpc/grpc-js-xds')).register();
  client = new grpc.Client(TARGET, grpc.credentials.createInsecure());
}, 30_000);

afterAll(async () => {
  client?.close();
  v1?.close();
  v2?.close();
  await cp?.close();
});

async function apply(doc: unknown): Promise<void> {
  await cp.store.apply(doc);
}

describe('proxyless gRPC client over SotW ADS', () => {
  it('reaches the backend chosen by a header match', async () => {
    await eventually('the first call to succeed', async () => (await who(client)).name === 'echo-v1', 15_000);
    for (let i = 0; i < 20; i++) {
      expect((await who(client)).name).toBe('echo-v1');
      expect((await who(client, { 'x-version': 'v2' })).name).toBe('echo-v2');
    }
    const view = cp.sotw.clients().find((c) => c.nodeId.startsWith('proxyless~'));
    expect(view).toBeDefined();
    // The client acknowledged what it was sent, for every type, in make-before-break order.
    for (const t of Object.values(view!.types)) expect(t.acked?.version).toBe(t.sent?.version);
    expect(Object.keys(view!.types).sort()).toEqual([...cp.publisher.typeUrls].sort());
  });

  it('follows a route change without restart and splits 80/20 within 4 sigma', async () => {
    await apply(route([{ backendRefs: [to('echo-v1', 80), to('echo-v2', 20)] }]));
    // The header route is gone once a v2-tagged call can land on v1.
    await eventually('the weighted route to be in effect', async () => {
      for (let i = 0; i < 20; i++) if ((await who(client, { 'x-version': 'v2' })).name === 'echo-v1') return true;
      return false;
    });
    const n = 1000;
    let onV1 = 0;
    for (let i = 0; i < n; i++) {
      const r = await who(client);
      expect(r.error).toBeUndefined();
      if (r.name === 'echo-v1') onV1++;
    }
    const sigma = Math.sqrt(n * 0.8 * 0.2);
    expect(Math.abs(onV1 - 0.8 * n)).toBeLessThan(4 * sigma);
  }, 60_000);

  it('applies fault injection from the route annotations (abort UNAVAILABLE, backend never called)', async () => {
    await apply(route([{ backendRefs: [to('echo-v1')] }], { 'fault.nodemesh.io/abort-grpc-status': '14' }));
    await eventually('the fault to be in effect', async () => (await who(client)).error?.code === grpc.status.UNAVAILABLE);
    const before = v1.calls;
    for (let i = 0; i < 10; i++) expect((await who(client)).error?.code).toBe(grpc.status.UNAVAILABLE);
    expect(v1.calls).toBe(before);
  });

  it('retries UNAVAILABLE per the route retry policy', async () => {
    await apply(route([{ backendRefs: [to('echo-v1')], retry: { codes: [503], attempts: 3, backoff: '10ms' } }]));
    await eventually('the fault to be gone', async () => (await who(client)).name === 'echo-v1');
    v1.failNext = 2;
    const before = v1.calls;
    const r = await who(client);
    expect(r.name).toBe('echo-v1');
    expect(v1.calls - before).toBe(3);
    // Without the retry policy the same failure reaches the caller.
    await apply(route([{ backendRefs: [to('echo-v1')] }]));
    await eventually('the retry policy to be gone', async () => {
      v1.failNext = 1;
      const res = await who(client);
      v1.failNext = 0;
      return res.error?.code === grpc.status.UNAVAILABLE;
    });
  });

  it('NACKs a RouteConfiguration it cannot accept and keeps routing with its last good config', async () => {
    await apply(route([{ matches: [{ headers: [{ name: 'x-version', value: 'v2' }] }], backendRefs: [to('echo-v2')] }, { backendRefs: [to('echo-v1')] }]));
    await eventually('header routing again', async () => (await who(client, { 'x-version': 'v2' })).name === 'echo-v2');
    const nacksBefore = (await cp.metrics.nacks.get()).values.find((v) => v.labels.type_url === ROUTE_TYPE_URL)?.value ?? 0;
    // path_separated_prefix is valid Envoy but not supported by gRPC clients: they must reject it.
    const bad = RouteConfiguration.fromPartial({
      name: ROUTE_NAME,
      virtualHosts: [
        {
          name: 'bad',
          domains: ['*'],
          routes: [
            {
              match: { pathSpecifier: { $case: 'pathSeparatedPrefix', value: '/x' } },
              action: { $case: 'route', value: { clusterSpecifier: { $case: 'cluster', value: `outbound|9090||echo-v2.default.svc.cluster.local` } } },
            },
          ],
        },
      ],
    });
    badRoute = xdsResource(ROUTE_TYPE_URL, ROUTE_NAME, RouteConfiguration.encode(bad).finish());
    forceRouteChange();
    await eventually('the client to NACK the route', async () => {
      const v = (await cp.metrics.nacks.get()).values.find((x) => x.labels.type_url === ROUTE_TYPE_URL)?.value ?? 0;
      return v > nacksBefore;
    });
    const view = cp.sotw.clients().find((c) => c.nodeId.startsWith('proxyless~'))!;
    const rds = view.types[ROUTE_TYPE_URL]!;
    expect(rds.rejected?.message).toMatch(/path_separated_prefix|path_specifier/);
    expect(rds.acked?.version).not.toBe(rds.rejected?.version);
    // Still routed by the last good config.
    for (let i = 0; i < 10; i++) {
      expect((await who(client, { 'x-version': 'v2' })).name).toBe('echo-v2');
      expect((await who(client)).name).toBe('echo-v1');
    }
    // The rejected version is not pushed again on unrelated changes.
    const pushesBefore = (await cp.metrics.pushes.get()).values.find((x) => x.labels.type_url === ROUTE_TYPE_URL)?.value ?? 0;
    forceRouteChange();
    await new Promise((r) => setTimeout(r, 200));
    const pushesAfter = (await cp.metrics.pushes.get()).values.find((x) => x.labels.type_url === ROUTE_TYPE_URL)?.value ?? 0;
    expect(pushesAfter).toBe(pushesBefore);
    // A good config is accepted again.
    badRoute = undefined;
    await apply(route([{ backendRefs: [to('echo-v2')] }]));
    await eventually('the fixed route to be acked and used', async () => (await who(client)).name === 'echo-v2');
  }, 30_000);
});

/** Tell the streams RDS may have changed (the override is not a store change). */
function forceRouteChange(): void {
  for (const l of overrideListeners) l({ typeUrl: ROUTE_TYPE_URL, names: new Set([ROUTE_NAME]), at: process.hrtime.bigint() });
}
