// Resources for Envoy translation and xDS tests: a waypoint Gateway, Services that use it, their
// Workloads, and builders for HTTPRoutes and AuthorizationPolicies.
import { validateResource, type AnyResource } from '../../control/resources';
import { MemorySnapshot } from '../../control/store/snapshot';

let revision = 0;
export function snapshotOf(docs: readonly unknown[]): MemorySnapshot {
  return MemorySnapshot.of(++revision, docs.map((d) => validateResource(d)) as AnyResource[]);
}

export const namespace = (name: string, labels?: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });

export const waypoint = (name = 'wp', ns = 'default') => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'Gateway',
  metadata: { name, namespace: ns, labels: { 'nodemesh.io/waypoint-for': 'service' } },
  spec: {
    gatewayClassName: 'nodemesh-waypoint',
    listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }],
    addresses: [{ type: 'IPAddress', value: '10.200.1.50' }],
  },
});

export const service = (
  name: string,
  vip: string,
  ports: unknown[],
  opts: { labels?: Record<string, string>; annotations?: Record<string, string>; selector?: Record<string, string>; ns?: string } = {},
) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: opts.ns ?? 'default', labels: opts.labels, annotations: opts.annotations },
  spec: { clusterIP: vip, selector: opts.selector ?? { app: name }, ports },
});

export const workload = (
  name: string,
  ip: string,
  labels: Record<string, string> = {},
  opts: { node?: string; ports?: unknown[]; annotations?: Record<string, string>; ns?: string } = {},
) => ({
  apiVersion: 'nodemesh.io/v1alpha1',
  kind: 'Workload',
  metadata: { name, namespace: opts.ns ?? 'default', labels, annotations: opts.annotations },
  spec: { node: opts.node ?? 'node-1', addresses: [ip], serviceAccount: name, ports: opts.ports },
});

export const httpRoute = (name: string, spec: Record<string, unknown>, annotations?: Record<string, string>, creationTimestamp?: string) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name, namespace: 'default', annotations, creationTimestamp },
  spec,
});

export const policy = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'security.nodemesh.io/v1alpha1',
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace: 'default' },
  spec,
});

/** web (HTTP 8080 + gRPC 9090 + TCP 5432) behind waypoint wp, with two more Services to route to. */
export function baseMesh(): unknown[] {
  return [
    namespace('default'),
    waypoint(),
    service(
      'web',
      '10.96.0.10',
      [
        { name: 'http', port: 8080, targetPort: 'http-web' },
        { name: 'grpc', port: 9090, appProtocol: 'grpc' },
        { name: 'tcp-db', port: 5432 },
      ],
      { labels: { 'nodemesh.io/use-waypoint': 'wp' } },
    ),
    service('web-v2', '10.96.0.11', [{ name: 'http', port: 8080 }]),
    service('mirror', '10.96.0.12', [{ name: 'http', port: 8080 }]),
    workload('web-a', '10.200.1.10', { app: 'web' }, { node: 'node-1', ports: [{ name: 'http-web', port: 8000 }] }),
    workload(
      'web-b',
      '10.200.2.10',
      { app: 'web' },
      { node: 'node-2', ports: [{ name: 'http-web', port: 8001 }], annotations: { 'nodemesh.io/health': 'draining' } },
    ),
    workload('web-c', '10.200.2.11', { app: 'web' }, { node: 'node-2' }),
    workload('web-v2-a', '10.200.1.20', { app: 'web-v2' }),
  ];
}

export const WEB_HTTP_ROUTE = 'web.default.svc.cluster.local:8080';

/**
 * baseMesh plus a Service with its own rate limit, an HTTPRoute using every match, filter, timeout,
 * retry and fault the translation knows, and a DENY and an ALLOW policy with every field: a mesh
 * whose translation exercises every kind of emitted config.
 */
export const everyFeatureMesh = (): MemorySnapshot =>
  snapshotOf([
    ...baseMesh(),
    service('limited', '10.96.0.20', [{ name: 'http', port: 80 }], {
      labels: { 'nodemesh.io/use-waypoint': 'wp' },
      annotations: { 'ratelimit.nodemesh.io/requests-per-second': '50' },
    }),
    httpRoute(
      'all',
      {
        parentRefs: [{ name: 'web' }],
        rules: [
          {
            matches: [
              {
                path: { type: 'PathPrefix', value: '/a' },
                headers: [{ name: 'X-Tenant', value: 'y' }],
                queryParams: [{ name: 'q', value: '1' }],
                method: 'GET',
              },
            ],
            backendRefs: [
              { name: 'web', port: 8080, weight: 9 },
              {
                name: 'web-v2',
                port: 8080,
                weight: 1,
                filters: [{ type: 'ResponseHeaderModifier', responseHeaderModifier: { add: [{ name: 'x-v', value: '2' }] } }],
              },
            ],
            timeouts: { request: '3s', backendRequest: '1s' },
            retry: { attempts: 2, codes: [503, 504], backoff: '25ms' },
          },
          {
            matches: [{ path: { type: 'RegularExpression', value: '^/r/[a-z]+$' } }],
            filters: [
              { type: 'URLRewrite', urlRewrite: { hostname: 'h', path: { type: 'ReplaceFullPath', replaceFullPath: '/z' } } },
              { type: 'RequestMirror', requestMirror: { backendRef: { name: 'mirror', port: 8080 }, fraction: { numerator: 1, denominator: 3 } } },
            ],
            backendRefs: [{ name: 'web', port: 8080 }],
          },
          {
            matches: [{ path: { type: 'PathPrefix', value: '/old' } }],
            filters: [
              {
                type: 'RequestRedirect',
                requestRedirect: { scheme: 'https', port: 443, path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' }, statusCode: 308 },
              },
            ],
          },
          { matches: [{ path: { type: 'Exact', value: '/none' } }] },
          {
            matches: [{ path: { type: 'PathPrefix', value: '/p' } }],
            filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-a', value: 'b' }], remove: ['x-c'] } }],
            backendRefs: [{ name: 'web', port: 8080 }],
          },
        ],
      },
      { 'fault.nodemesh.io/abort-http-status': '503', 'fault.nodemesh.io/delay': '10ms', 'fault.nodemesh.io/percent': '1' },
    ),
    policy('deny', {
      targetRefs: [{ kind: 'Service', name: 'web' }],
      action: 'DENY',
      rules: [{ to: [{ operation: { methods: ['DELETE'], notPaths: ['/public*'] } }], when: [{ key: 'request.headers[x-debug]', values: ['1'] }] }],
    }),
    policy('allow', {
      targetRefs: [{ kind: 'Service', name: 'web' }],
      action: 'ALLOW',
      rules: [
        {
          from: [{ source: { principals: ['*'], notNamespaces: ['test'], ipBlocks: ['10.0.0.0/8'] } }],
          to: [{ operation: { ports: ['8080'], hosts: ['*.example.com'] } }],
        },
      ],
    }),
  ]);

/** Namespace default (ambient), web-1 and web-2 (app: web) on node-1, and Service web 10.96.0.12:80 -> 8080. */
export function ambientWeb(): unknown[] {
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default', labels: { 'nodemesh.io/dataplane-mode': 'ambient' } } },
    workload('web-1', '10.200.1.5', { app: 'web' }),
    workload('web-2', '10.200.1.6', { app: 'web' }),
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'default' },
      spec: { clusterIP: '10.96.0.12', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
    },
  ];
}

/** The gRPC echo mesh the proxyless-client tests route in: Service echo (9090) over versions v1 and v2. */
export const ECHO_GRPC_PORT = { name: 'grpc', port: 9090, targetPort: 'grpc', appProtocol: 'grpc' };
export const echoRoute = (rules: unknown[], annotations?: Record<string, string>) =>
  httpRoute('echo', { parentRefs: [{ name: 'echo', port: 9090 }], rules }, annotations);
export const echoBackend = (name: string, weight?: number) => ({ name, port: 9090, ...(weight !== undefined ? { weight } : {}) });

/** echo, echo-v1 and echo-v2 with one Workload per version at `v1`/`v2`, and a route: x-version: v2 to v2, else v1. */
export function echoMesh(v1: { host: string; port: number }, v2: { host: string; port: number }): unknown[] {
  return [
    namespace('default'),
    service('echo', '10.96.1.1', [ECHO_GRPC_PORT]),
    service('echo-v1', '10.96.1.2', [ECHO_GRPC_PORT], { selector: { app: 'echo', version: 'v1' } }),
    service('echo-v2', '10.96.1.3', [ECHO_GRPC_PORT], { selector: { app: 'echo', version: 'v2' } }),
    workload('echo-v1', v1.host, { app: 'echo', version: 'v1' }, { ports: [{ name: 'grpc', port: v1.port }] }),
    workload('echo-v2', v2.host, { app: 'echo', version: 'v2' }, { ports: [{ name: 'grpc', port: v2.port }] }),
    echoRoute([
      { matches: [{ headers: [{ name: 'x-version', value: 'v2' }] }], backendRefs: [echoBackend('echo-v2')] },
      { backendRefs: [echoBackend('echo-v1')] },
    ]),
  ];
}
