// Every emitted resource survives encode -> decode unchanged, and names only real Envoy
// extensions: each typed_config's type URL is the one of the filter / socket its name says.
import { describe, expect, it } from 'vitest';
import { Cluster } from '../../api/gen/envoy/config/cluster/v3/cluster';
import { ClusterLoadAssignment } from '../../api/gen/envoy/config/endpoint/v3/endpoint';
import { Listener } from '../../api/gen/envoy/config/listener/v3/listener';
import { RouteConfiguration } from '../../api/gen/envoy/config/route/v3/route';
import { HTTPFault } from '../../api/gen/envoy/extensions/filters/http/fault/v3/fault';
import { Router } from '../../api/gen/envoy/extensions/filters/http/router/v3/router';
import { baseMesh, everyFeatureMesh, httpRoute, service } from '../../test/envoy/fixtures';
import { codecFor, pack, typeNameOf, unpack, unpackAny } from './any';
import { translateEnvoy } from './translate';

// The extensions Envoy ships under these names, and the config type each one takes.
const EXTENSIONS: Record<string, string> = {
  'envoy.filters.network.http_connection_manager': 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  'envoy.filters.network.tcp_proxy': 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  'envoy.filters.http.router': 'envoy.extensions.filters.http.router.v3.Router',
  'envoy.filters.http.rbac': 'envoy.extensions.filters.http.rbac.v3.RBAC',
  'envoy.filters.network.rbac': 'envoy.extensions.filters.network.rbac.v3.RBAC',
  'envoy.filters.http.fault': 'envoy.extensions.filters.http.fault.v3.HTTPFault',
  'envoy.filters.http.local_ratelimit': 'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
  'envoy.transport_sockets.tls': 'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
};
const PER_ROUTE_CONFIG = new Set(['envoy.extensions.filters.http.fault.v3.HTTPFault']);
const API_LISTENER = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

/** Walk proto3 JSON: check every {name, typedConfig} pair and every per-filter config. */
function checkExtensions(json: unknown, seen: Set<string>, path = '$'): void {
  if (Array.isArray(json)) return json.forEach((v, i) => checkExtensions(v, seen, `${path}[${i}]`));
  if (!json || typeof json !== 'object') return;
  const o = json as Record<string, unknown>;
  if (typeof o.name === 'string' && o.typedConfig && typeof o.typedConfig === 'object') {
    const type = typeNameOf(String((o.typedConfig as Record<string, unknown>)['@type']));
    expect(EXTENSIONS[o.name], `${path}: filter ${o.name} is not an Envoy extension we know`).toBeDefined();
    expect(type, `${path}: ${o.name} takes ${EXTENSIONS[o.name]}`).toBe(EXTENSIONS[o.name]);
    seen.add(o.name);
  }
  if (o.typedPerFilterConfig) {
    for (const [name, cfg] of Object.entries(o.typedPerFilterConfig as Record<string, Record<string, unknown>>)) {
      expect(EXTENSIONS[name]).toBeDefined();
      expect(PER_ROUTE_CONFIG.has(typeNameOf(String(cfg['@type'])))).toBe(true);
    }
  }
  const api = o.apiListener as Record<string, unknown> | undefined;
  if (api && '@type' in api) {
    expect(typeNameOf(String(api['@type']))).toBe(API_LISTENER);
    seen.add('api_listener');
  }
  for (const [k, v] of Object.entries(o)) checkExtensions(v, seen, `${path}.${k}`);
}

describe('Envoy resources round-trip through the generated types', () => {
  const config = translateEnvoy(everyFeatureMesh());
  const kinds = [
    ['Listener', Listener, config.listeners],
    ['RouteConfiguration', RouteConfiguration, config.routes],
    ['Cluster', Cluster, config.clusters],
    ['ClusterLoadAssignment', ClusterLoadAssignment, config.endpoints],
  ] as const;
  for (const [label, codec, map] of kinds) {
    it(`${label}: encode -> decode -> deep-equal, and proto3 JSON -> message -> same bytes`, () => {
      expect(map.size).toBeGreaterThan(0);
      for (const message of map.values()) {
        const bytes = (codec.encode as (m: typeof message) => { finish(): Uint8Array })(message).finish();
        const decoded = codec.decode(bytes);
        expect(decoded).toEqual(message);
        const viaJson = (codec.fromJSON as (o: unknown) => typeof message)((codec.toJSON as (m: typeof message) => unknown)(message));
        expect(Buffer.from((codec.encode as (m: typeof message) => { finish(): Uint8Array })(viaJson).finish())).toEqual(Buffer.from(bytes));
      }
    });
  }
  it('names only real Envoy extensions, each with its own config type', () => {
    const seen = new Set<string>();
    for (const l of config.listeners.values()) checkExtensions(Listener.toJSON(l), seen);
    for (const r of config.routes.values()) checkExtensions(RouteConfiguration.toJSON(r), seen);
    expect([...seen].sort()).toEqual([...Object.keys(EXTENSIONS), 'api_listener'].sort());
  });
});

describe('Any packing', () => {
  it('packs and unpacks by type URL through the type registry', () => {
    const fault = HTTPFault.fromPartial({ abort: { errorType: { $case: 'grpcStatus', value: 14 } } });
    const any = pack(HTTPFault, fault);
    expect(any.typeUrl).toBe('type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault');
    expect(unpack(HTTPFault, any)).toEqual(fault);
    expect(unpackAny(any)).toEqual(fault);
    expect(codecFor(any.typeUrl).$type).toBe(HTTPFault.$type);
  });
  it('refuses a mismatched or unknown type with an actionable message', () => {
    const any = pack(Router, Router.fromPartial({}));
    expect(() => unpack(HTTPFault, any)).toThrow(
      /expected google.protobuf.Any of type envoy.extensions.filters.http.fault.v3.HTTPFault, got type.googleapis.com\/envoy.extensions.filters.http.router.v3.Router/,
    );
    expect(() => unpackAny({ ...any, typeUrl: 'type.googleapis.com/no.such.Type' })).toThrow(/no generated type no.such.Type is loaded/);
  });
});

describe('incremental translation', () => {
  it('reuses unchanged Services and gives the same result as a full translation', async () => {
    const { MemoryStore } = await import('../store/base-store.js');
    const { ServiceOutputCache } = await import('./translate.js');
    const store = new MemoryStore();
    await store.applyAll(baseMesh());
    const cache = new ServiceOutputCache();
    translateEnvoy(store.snapshot(), undefined, cache);
    expect(cache.hits).toBe(0);
    // A route on web changes web's output only; web-v2 and mirror are reused.
    await store.apply(httpRoute('r', { parentRefs: [{ name: 'web' }], rules: [{ backendRefs: [{ name: 'web-v2', port: 8080 }] }] }));
    const incremental = translateEnvoy(store.snapshot(), undefined, cache);
    expect(cache.hits).toBe(2);
    const full = translateEnvoy(store.snapshot());
    for (const key of ['listeners', 'routes', 'clusters', 'endpoints'] as const) {
      expect([...incremental[key].keys()].sort()).toEqual([...full[key].keys()].sort());
      for (const [k, v] of full[key]) expect(incremental[key].get(k)).toEqual(v);
    }
    // A change to a backend Service the route points at invalidates web too.
    await store.apply(service('web-v2', '10.96.0.11', [{ name: 'http', port: 8081 }]));
    const hitsBefore = cache.hits;
    const again = translateEnvoy(store.snapshot(), undefined, cache);
    expect(cache.hits - hitsBefore).toBe(1); // only mirror
    expect(again.warnings.some((w) => w.includes('backendRef Service default/web-v2 has no port 8080'))).toBe(true);
  });
});
