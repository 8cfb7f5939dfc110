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
import { everyFeatureMesh } from './fixtures';
import { pgvViolations } from './pgv';

describe('protoc-gen-validate rules of Envoy', () => {
  const config = translateEnvoy(everyFeatureMesh());
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
    expect(pgvViolations(Cluster.$type, Cluster.encode(cluster).finish())).toEqual(
      expect.arrayContaining([expect.stringMatching(/connect_timeout: duration 0s must be > 0s/)]),
    );
    const hcm = HttpConnectionManager.fromPartial({ statPrefix: '', httpFilters: [{ name: 'envoy.filters.http.router' }] });
    const listener = Listener.fromPartial({
      name: 'l',
      filterChains: [
        { filters: [{ name: 'envoy.filters.network.http_connection_manager', configType: { $case: 'typedConfig', value: pack(HttpConnectionManager, hcm) } }] },
      ],
    });
    const v = pgvViolations(Listener.$type, Listener.encode(listener).finish());
    expect(v).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/stat_prefix: must be at least 1 characters/),
        expect.stringMatching(/one of rds, route_config, scoped_routes is required/),
      ]),
    );
    const rc = RouteConfiguration.fromPartial({
      name: 'r',
      virtualHosts: [
        { name: 'v', domains: [], routes: [{ match: { pathSpecifier: { $case: 'prefix', value: '/' } }, requestHeadersToRemove: ['bad header'] }] },
      ],
    });
    expect(pgvViolations(RouteConfiguration.$type, RouteConfiguration.encode(rc).finish())).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/domains: needs at least 1 items/),
        expect.stringMatching(/one of route, redirect.* is required/),
        expect.stringMatching(/"bad header" is not an HTTP header name/),
      ]),
    );
  });
});
