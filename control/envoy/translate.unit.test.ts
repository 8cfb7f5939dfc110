// Golden-file tests for the Envoy translation: one file per HTTPRoute feature and policy shape in
// control/envoy/testdata/. Regenerate with UPDATE_GOLDEN=1 and review the diff.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RouteConfiguration } from '../../api/gen/envoy/config/route/v3/route';
import { Listener } from '../../api/gen/envoy/config/listener/v3/listener';
import { Cluster } from '../../api/gen/envoy/config/cluster/v3/cluster';
import { ClusterLoadAssignment } from '../../api/gen/envoy/config/endpoint/v3/endpoint';
import { baseMesh, httpRoute, namespace, policy, snapshotOf, WEB_HTTP_ROUTE } from '../../test/envoy/fixtures';
import { expectGolden } from '../../test/support/golden';
import { translateEnvoy, waypointView } from './translate';
import { parseEndpointWorkload } from '../../common/contracts/telemetry';
import { validateResource, type AnyResource } from '../resources';
import { podWorkloadSpec } from '../resources/workload';
import { MemorySnapshot } from '../store/snapshot';

const GOLDEN_DIR = join(__dirname, 'testdata');
const golden = (name: string, actual: unknown): void => expectGolden(GOLDEN_DIR, name, actual);

const web = (rules: unknown[], extra: Record<string, unknown> = {}) => ({ parentRefs: [{ name: 'web', port: 8080 }], rules, ...extra });

function routeJson(docs: unknown[], name = WEB_HTTP_ROUTE): unknown {
  const config = translateEnvoy(snapshotOf([...baseMesh(), ...docs]));
  const rc = config.routes.get(name);
  if (!rc) throw new Error(`no RouteConfiguration ${name}`);
  return { routeConfiguration: RouteConfiguration.toJSON(rc), warnings: config.warnings };
}

const ROUTE_CASES: Record<string, unknown[]> = {
  'route-default': [],
  'route-path-exact-prefix-regex': [
    httpRoute(
      'paths',
      web([
        { matches: [{ path: { type: 'PathPrefix', value: '/api' } }], backendRefs: [{ name: 'web', port: 8080 }] },
        { matches: [{ path: { type: 'Exact', value: '/api/health' } }], backendRefs: [{ name: 'web-v2', port: 8080 }] },
        { matches: [{ path: { type: 'RegularExpression', value: '/v[0-9]+/.*' } }], backendRefs: [{ name: 'web-v2', port: 8080 }] },
        { matches: [{ path: { type: 'PathPrefix', value: '/api/v2/' } }], backendRefs: [{ name: 'web-v2', port: 8080 }] },
      ]),
    ),
  ],
  'route-header-query-method': [
    httpRoute(
      'matches',
      web([
        {
          matches: [{ headers: [{ name: 'X-Version', value: 'v2' }], queryParams: [{ name: 'debug', value: '1' }] }],
          backendRefs: [{ name: 'web-v2', port: 8080 }],
        },
        { matches: [{ method: 'POST' }], backendRefs: [{ name: 'web-v2', port: 8080 }] },
        {
          matches: [
            {
              headers: [
                { type: 'RegularExpression', name: 'user-agent', value: '.*Mobile.*' },
                { name: 'x-a', value: 'b' },
              ],
            },
          ],
          backendRefs: [{ name: 'web', port: 8080 }],
        },
      ]),
    ),
  ],
  'route-weighted': [
    httpRoute(
      'split',
      web([
        {
          backendRefs: [
            { name: 'web', port: 8080, weight: 80 },
            {
              name: 'web-v2',
              port: 8080,
              weight: 20,
              filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-canary', value: 'true' }] } }],
            },
          ],
        },
      ]),
    ),
  ],
  'route-header-modifiers': [
    httpRoute(
      'headers',
      web([
        {
          filters: [
            {
              type: 'RequestHeaderModifier',
              requestHeaderModifier: { set: [{ name: 'X-Set', value: 'a' }], add: [{ name: 'x-add', value: 'b' }], remove: ['x-remove'] },
            },
            { type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'x-served-by', value: 'waypoint' }], remove: ['server'] } },
          ],
          backendRefs: [{ name: 'web', port: 8080 }],
        },
      ]),
    ),
  ],
  'route-redirect': [
    httpRoute(
      'redirect',
      web([
        {
          matches: [{ path: { type: 'PathPrefix', value: '/old' } }],
          filters: [{ type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' }, statusCode: 301 } }],
        },
        {
          matches: [{ path: { type: 'Exact', value: '/secure' } }],
          filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', hostname: 'secure.example.com', port: 8443 } }],
        },
        {
          matches: [{ path: { type: 'Exact', value: '/moved' } }],
          filters: [{ type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplaceFullPath', replaceFullPath: '/elsewhere' }, statusCode: 308 } }],
        },
      ]),
    ),
  ],
  'route-rewrite': [
    httpRoute(
      'rewrite',
      web([
        {
          matches: [{ path: { type: 'PathPrefix', value: '/app' } }],
          filters: [{ type: 'URLRewrite', urlRewrite: { hostname: 'internal.web', path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } } }],
          backendRefs: [{ name: 'web', port: 8080 }],
        },
        {
          matches: [{ path: { type: 'Exact', value: '/full' } }],
          filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplaceFullPath', replaceFullPath: '/replaced' } } }],
          backendRefs: [{ name: 'web', port: 8080 }],
        },
      ]),
    ),
  ],
  'route-mirror': [
    httpRoute(
      'mirror',
      web([
        {
          filters: [{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'mirror', port: 8080 }, percent: 25 } }],
          backendRefs: [{ name: 'web', port: 8080 }],
        },
      ]),
    ),
  ],
  'route-timeouts-retries': [
    httpRoute(
      'resilience',
      web([
        {
          matches: [{ path: { type: 'PathPrefix', value: '/slow' } }],
          timeouts: { request: '10s', backendRequest: '2s' },
          retry: { codes: [503, 504], attempts: 3, backoff: '100ms' },
          backendRefs: [{ name: 'web', port: 8080 }],
        },
        {
          matches: [{ path: { type: 'PathPrefix', value: '/once' } }],
          timeouts: { request: '5s', backendRequest: '1s' },
          backendRefs: [{ name: 'web', port: 8080 }],
        },
      ]),
    ),
  ],
  'route-fault': [
    httpRoute('fault', web([{ backendRefs: [{ name: 'web', port: 8080 }] }]), {
      'fault.nodemesh.io/abort-grpc-status': '14',
      'fault.nodemesh.io/delay': '50ms',
      'fault.nodemesh.io/percent': '50',
    }),
  ],
  'route-section-name': [
    httpRoute('by-name', { parentRefs: [{ name: 'web', sectionName: 'http' }], rules: [{ backendRefs: [{ name: 'web-v2', port: 8080 }] }] }),
    httpRoute('other-port', { parentRefs: [{ name: 'web', sectionName: 'grpc' }], rules: [{ backendRefs: [{ name: 'mirror', port: 8080 }] }] }),
  ],
  'route-no-backends': [httpRoute('empty', web([{ matches: [{ path: { type: 'Exact', value: '/nothing' } }] }]))],
  'route-precedence-age': [
    httpRoute(
      'newer',
      web([{ matches: [{ path: { type: 'PathPrefix', value: '/x' } }], backendRefs: [{ name: 'web-v2', port: 8080 }] }]),
      undefined,
      '2024-02-01T00:00:00Z',
    ),
    httpRoute(
      'older',
      web([{ matches: [{ path: { type: 'PathPrefix', value: '/x' } }], backendRefs: [{ name: 'web', port: 8080 }] }]),
      undefined,
      '2024-01-01T00:00:00Z',
    ),
  ],
};

describe('Envoy translation: HTTPRoute -> RouteConfiguration (golden files)', () => {
  for (const [name, docs] of Object.entries(ROUTE_CASES)) {
    it(name, () => golden(name, routeJson(docs)));
  }
});

function rbacJson(docs: unknown[]): unknown {
  const config = translateEnvoy(snapshotOf([...baseMesh(), ...docs]));
  const l = config.listeners.get('inbound-vip|8080|http|web.default.svc.cluster.local');
  if (!l) throw new Error('no internal listener for web:8080');
  const json = Listener.toJSON(l) as { filterChains: { filters: { typedConfig: { httpFilters: { name: string }[] } }[] }[] };
  const filters = json.filterChains[0]!.filters[0]!.typedConfig.httpFilters.filter((f) => f.name === 'envoy.filters.http.rbac');
  return { rbacFilters: filters, warnings: config.warnings };
}

const target = { targetRefs: [{ kind: 'Service', name: 'web' }] };
const POLICY_CASES: Record<string, unknown[]> = {
  'rbac-none': [],
  'rbac-allow-l7': [
    policy('allow-get', {
      ...target,
      action: 'ALLOW',
      rules: [
        {
          from: [{ source: { principals: ['cluster.local/ns/default/sa/client'] } }],
          to: [{ operation: { methods: ['GET', 'HEAD'], paths: ['/api/*', '/health'], hosts: ['web.default.svc.cluster.local', '*.example.com'] } }],
        },
      ],
    }),
  ],
  'rbac-deny-and-allow': [
    policy('deny-admin', { ...target, action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] }),
    policy('allow-ns', { ...target, action: 'ALLOW', rules: [{ from: [{ source: { namespaces: ['default', 'prod-*'] } }] }] }),
  ],
  'rbac-l4-only': [
    policy('l4', {
      ...target,
      action: 'ALLOW',
      rules: [
        { from: [{ source: { ipBlocks: ['10.200.0.0/16'], notPrincipals: ['cluster.local/ns/default/sa/bad'] } }], to: [{ operation: { ports: ['8080'] } }] },
      ],
    }),
  ],
  'rbac-when-and-jwt': [
    policy('when', {
      ...target,
      action: 'ALLOW',
      rules: [
        {
          when: [
            { key: 'request.headers[X-Tenant]', values: ['a', 'b'] },
            { key: 'source.namespace', notValues: ['test'] },
          ],
        },
        { from: [{ source: { requestPrincipals: ['issuer/subject'] } }] },
      ],
    }),
  ],
  'rbac-gateway-target-allow-nothing': [policy('gw', { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'wp' }], action: 'ALLOW' })],
};

describe('Envoy translation: AuthorizationPolicy -> RBAC filters (golden files)', () => {
  for (const [name, docs] of Object.entries(POLICY_CASES)) {
    it(name, () => golden(name, rbacJson(docs)));
  }
});

describe('Envoy translation: AuthorizationPolicy on a TCP port -> network RBAC (golden file)', () => {
  it('rbac-tcp-port', () => {
    const config = translateEnvoy(
      snapshotOf([
        ...baseMesh(),
        policy('deny-delete', { ...target, action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] }),
        policy('allow-mixed', {
          ...target,
          action: 'ALLOW',
          rules: [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/db-client'] } }] }, { to: [{ operation: { paths: ['/x'] } }] }],
        }),
      ]),
    );
    const l = config.listeners.get('inbound-vip|5432|tcp|web.default.svc.cluster.local')!;
    golden('rbac-tcp-port', { listener: Listener.toJSON(l), warnings: config.warnings });
  });
});

describe('Envoy translation: listeners, clusters, endpoints (golden files)', () => {
  const config = translateEnvoy(snapshotOf(baseMesh()));
  it('waypoint listeners', () => {
    const view = config.views.get(waypointView('default', 'wp'))!;
    golden(
      'waypoint-listeners',
      [...view.listeners].sort().map((k) => Listener.toJSON(config.listeners.get(k)!)),
    );
  });
  it('waypoint internal clusters', () => {
    const view = config.views.get(waypointView('default', 'wp'))!;
    golden(
      'waypoint-clusters',
      [...view.clusters].sort().map((k) => Cluster.toJSON(config.clusters.get(k)!)),
    );
  });
  it('proxyless api_listener', () => golden('api-listener', Listener.toJSON(config.listeners.get('web.default.svc.cluster.local:9090')!)));
  it('outbound cluster and endpoints (targetPort by name, locality per node, health)', () => {
    golden('cluster-web-8080', {
      cluster: Cluster.toJSON(config.clusters.get('outbound|8080||web.default.svc.cluster.local')!),
      endpoints: ClusterLoadAssignment.toJSON(config.endpoints.get('outbound|8080||web.default.svc.cluster.local')!),
      grpcCluster: Cluster.toJSON(config.clusters.get('outbound|9090||web.default.svc.cluster.local')!),
    });
  });
});

describe('Envoy translation: endpoints of enrolled workloads are reached over HBONE', () => {
  const endpointsOf = (docs: unknown[]) => {
    const cla = translateEnvoy(snapshotOf(docs)).endpoints.get('outbound|8080||web.default.svc.cluster.local')!;
    return cla.endpoints.flatMap((l) => l.lbEndpoints);
  };
  it('marks every endpoint with the tunnel and the identity it must present when the namespace is ambient', () => {
    const mesh = baseMesh().map((d) => ((d as { kind?: string }).kind === 'Namespace' ? namespace('default', { 'nodemesh.io/dataplane-mode': 'ambient' }) : d));
    const eps = endpointsOf(mesh);
    expect(eps.length).toBeGreaterThan(0);
    for (const ep of eps) {
      const address = ep.hostIdentifier?.$case === 'endpoint' ? ep.hostIdentifier.value.address?.address : undefined;
      const ip = address?.$case === 'socketAddress' ? address.value.address : '';
      expect(ep.metadata?.filterMetadata['envoy.transport_socket_match']).toEqual({ tunnel: 'http' });
      expect(ep.metadata?.filterMetadata['nodemesh']).toMatchObject({ hbone: `${ip}:15008` });
      expect(String(ep.metadata?.filterMetadata['nodemesh']?.identity)).toMatch(/^spiffe:\/\/cluster\.local\/ns\/default\/sa\/.+/);
    }
  });
  const plaintext = (ep: { metadata?: { filterMetadata: Record<string, unknown> } }) => {
    expect(Object.keys(ep.metadata?.filterMetadata ?? {})).toEqual(['istio']);
  };
  it('a Pod published before it has an IP is no endpoint (and does not break the others)', () => {
    const docs = [...baseMesh()];
    const before = endpointsOf(docs).length;
    const pending = validateResource(
      {
        apiVersion: 'nodemesh.io/v1alpha1',
        kind: 'Workload',
        metadata: {
          name: 'web-pending',
          namespace: 'default',
          labels: { app: 'web' },
          annotations: { 'nodemesh.io/pod-uid': '5f0c6e2a-1b2c-4d3e-8f90-0123456789ab' },
        },
        spec: { node: 'node1', addresses: [], ports: [{ name: 'http', port: 8080 }] },
      },
      { spec: podWorkloadSpec },
    );
    const cla = translateEnvoy(MemorySnapshot.of(1_000_000, [...docs.map((d) => validateResource(d)), pending] as AnyResource[])).endpoints.get(
      'outbound|8080||web.default.svc.cluster.local',
    )!;
    expect(cla.endpoints.flatMap((l) => l.lbEndpoints)).toHaveLength(before);
  });
  it('leaves endpoints of workloads outside the mesh in plaintext (no tunnel marker), also when the workload opts out', () => {
    for (const ep of endpointsOf(baseMesh())) plaintext(ep);
    const optedOut = [
      ...baseMesh().map((d) => ((d as { kind?: string }).kind === 'Namespace' ? namespace('default', { 'nodemesh.io/dataplane-mode': 'ambient' }) : d)),
    ].map((d) => {
      const r = d as { kind?: string; metadata?: { labels?: Record<string, string> } };
      return r.kind === 'Workload' ? { ...r, metadata: { ...r.metadata, labels: { ...r.metadata?.labels, 'nodemesh.io/dataplane-mode': 'none' } } } : d;
    });
    for (const ep of endpointsOf(optedOut)) plaintext(ep);
  });
  it("names every endpoint's workload as Istio does (istio.workload: name;namespace;canonical service;canonical revision;cluster)", () => {
    const labelled = baseMesh().map((d) => {
      const r = d as { kind?: string; metadata?: { name?: string; labels?: Record<string, string> } };
      if (r.kind !== 'Workload') return d;
      const labels = { ...r.metadata?.labels, 'service.istio.io/canonical-name': 'shop-web', version: 'v3' };
      return { ...r, metadata: { ...r.metadata, labels } };
    });
    const eps = endpointsOf(labelled);
    expect(eps.length).toBeGreaterThan(0);
    for (const ep of eps) {
      const w = parseEndpointWorkload(ep.metadata?.filterMetadata['istio']?.workload);
      expect(w).toMatchObject({ namespace: 'default', canonicalService: 'shop-web', canonicalRevision: 'v3', cluster: 'Kubernetes' });
      expect(w?.name).toMatch(/^web-/);
    }
  });
});
