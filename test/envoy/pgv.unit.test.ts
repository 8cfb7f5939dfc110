// Every resource the translation emits (and the waypoint bootstrap) passes the protoc-gen-validate
// rules of Envoy's .proto files — the first check Envoy applies to any config it loads.
import { describe, expect, it } from 'vitest';
import { Bootstrap } from '../../api/gen/envoy/config/bootstrap/v3/bootstrap';
import { Cluster } from '../../api/gen/envoy/config/cluster/v3/cluster';
import { ClusterLoadAssignment } from '../../api/gen/envoy/config/endpoint/v3/endpoint';
import { Listener } from '../../api/gen/envoy/config/listener/v3/listener';
import { RouteConfiguration } from '../../api/gen/envoy/config/route/v3/route';
import { HttpConnectionManager } from '../../api/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager';
import { pack } from '../../control/envoy/any';
import { waypointBootstrap } from '../../control/envoy/bootstrap';
import { translateEnvoy } from '../../control/envoy/translate';
import { baseMesh, httpRoute, policy, service, snapshotOf } from './fixtures';
import { pgvViolations } from './pgv';

const mesh = () =>
  snapshotOf([
    ...baseMesh(),
    service('limited', '10.96.0.20', [{ name: 'http', port: 80 }], { labels: { 'nodemesh.io/use-waypoint': 'wp' }, annotations: { 'ratelimit.nodemesh.io/requests-per-second': '50' } }),
    httpRoute(
      'all',
      {
        parentRefs: [{ name: 'web' }],
        rules: [
          { matches: [{ path: { type: 'PathPrefix', value: '/a' }, headers: [{ name: 'X-Tenant', value: 'y' }], queryParams: [{ name: 'q', value: '1' }], method: 'GET' }], backendRefs: [{ name: 'web', port: 8080, weight: 9 }, { name: 'web-v2', port: 8080, weight: 1, filters: [{ type: 'ResponseHeaderModifier', responseHeaderModifier: { add: [{ name: 'x-v', value: '2' }] } }] }], timeouts: { request: '3s', backendRequest: '1s' }, retry: { attempts: 2, codes: [503, 504], backoff: '25ms' } },
          { matches: [{ path: { type: 'RegularExpression', value: '^/r/[a-z]+$' } }], filters: [{ type: 'URLRewrite', urlRewrite: { hostname: 'h', path: { type: 'ReplaceFullPath', replaceFullPath: '/z' } } }, { type: 'RequestMirror', requestMirror: { backendRef: { name: 'mirror', port: 8080 }, fraction: { numerator: 1, denominator: 3 } } }], backendRefs: [{ name: 'web', port: 8080 }] },
          { matches: [{ path: { type: 'PathPrefix', value: '/old' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', port: 443, path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' }, statusCode: 308 } }] },
          { matches: [{ path: { type: 'Exact', value: '/none' } }] },
          { matches: [{ path: { type: 'PathPrefix', value: '/p' } }], filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-a', value: 'b' }], remove: ['x-c'] } }], backendRefs: [{ name: 'web', port: 8080 }] },
        ],
      },
      { 'fault.nodemesh.io/abort-http-status': '503', 'fault.nodemesh.io/delay': '10ms', 'fault.nodemesh.io/percent': '1' },
    ),
    policy('deny', { targetRefs: [{ kind: 'Service', name: 'web' }], action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'], notPaths: ['/public*'] } }], when: [{ key: 'request.headers[x-debug]', values: ['1'] }] }] }),
    policy('allow', { targetRefs: [{ kind: 'Service', name: 'web' }], action: 'ALLOW', rules: [{ from: [{ source: { principals: ['*'], notNamespaces: ['test'], ipBlocks: ['10.0.0.0/8'] } }], to: [{ operation: { ports: ['8080'], hosts: ['*.example.com'] } }] }] }),
  ]);

describe('protoc-gen-validate rules of Envoy', () => {
  const config = translateEnvoy(mesh());
  const kinds = [
    [Listener, config.listeners],
    [RouteConfiguration, config.routes],
    [Cluster, config.clusters],
    [ClusterLoadAssignment, config.endpoints],
  ] as const;
  for (const [codec, map] of kinds) {
    it(`every ${codec.$type.split('.').pop()} passes`, () => {
      const violations: string[] = [];
      for (const message of map.values()) {
        const bytes = (codec.encode as (m: typeof message) => { finish(): Uint8Array })(message).finish();
        violations.push(...pgvViolations(codec.$type, bytes));
      }
      expect(violations).toEqual([]);
    });
  }

  it('the waypoint bootstrap passes', () => {
    const b = waypointBootstrap({ name: 'wp', namespace: 'default', ip: '10.0.0.5', xdsAddress: 'nodemesh-control.nodemesh-system.svc:15012' });
    expect(pgvViolations(Bootstrap.$type, Bootstrap.encode(b).finish())).toEqual([]);
  });

  it('catches violations (so a pass means something)', () => {
    const cluster = Cluster.fromPartial({ name: 'c', connectTimeout: { seconds: 0, nanos: 0 } });
    expect(pgvViolations(Cluster.$type, Cluster.encode(cluster).finish())).toEqual(expect.arrayContaining([expect.stringMatching(/connect_timeout: duration 0s must be > 0s/)]));
    const hcm = HttpConnectionManager.fromPartial({ statPrefix: '', httpFilters: [{ name: 'envoy.filters.http.router' }] });
    const listener = Listener.fromPartial({
      name: 'l',
      filterChains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', configType: { $case: 'typedConfig', value: pack(HttpConnectionManager, hcm) } }] }],
    });
    const v = pgvViolations(Listener.$type, Listener.encode(listener).finish());
    expect(v).toEqual(expect.arrayContaining([expect.stringMatching(/stat_prefix: must be at least 1 characters/), expect.stringMatching(/one of rds, route_config, scoped_routes is required/)]));
    const rc = RouteConfiguration.fromPartial({ name: 'r', virtualHosts: [{ name: 'v', domains: [], routes: [{ match: { pathSpecifier: { $case: 'prefix', value: '/' } }, requestHeadersToRemove: ['bad header'] }] }] });
    expect(pgvViolations(RouteConfiguration.$type, RouteConfiguration.encode(rc).finish())).toEqual(
      expect.arrayContaining([expect.stringMatching(/domains: needs at least 1 items/), expect.stringMatching(/one of route, redirect.* is required/), expect.stringMatching(/"bad header" is not an HTTP header name/)]),
    );
  });
});
