// Resource documents over a small universe (three namespaces, a few names, labels, addresses and
// ports), so that generated stores are dense with references: Services selecting Workloads,
// waypoints in use, policies selecting and targeting them. Most are valid; some are not (bad
// ports, unknown fields), which validation must refuse cleanly.
import fc from 'fast-check';

const NS = ['default', 'a', 'b'] as const;
const NAMES = ['web', 'db', 'api', 'wp', 'x'] as const;
const APPS = ['web', 'db', 'api'] as const;
const NODES = ['node1', 'node2'] as const;

const ns = fc.constantFrom(...NS);
const name = fc.constantFrom(...NAMES);
const app = fc.constantFrom(...APPS);
const port = fc.oneof(fc.constantFrom(80, 8080, 5432, 15008), fc.integer({ min: -1, max: 70_000 }));
const ip = fc.oneof(
  fc.tuple(fc.constantFrom(1, 2), fc.integer({ min: 1, max: 6 })).map(([n, k]) => `10.200.${n}.${k}`),
  fc.constantFrom('10.96.0.10', '10.96.0.11', 'fd00::1', '999.1.1.1', ''),
);
const maybe = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined });
const labels = fc.dictionary(
  fc.constantFrom('app', 'version', 'nodemesh.io/use-waypoint', 'nodemesh.io/dataplane-mode', 'nodemesh.io/waypoint-for'),
  fc.constantFrom('web', 'db', 'api', 'wp', 'ambient', 'none', 'service', 'workload', 'v1'),
  { maxKeys: 3 },
);
const matchString = fc.constantFrom('*', 'cluster.local/ns/a/sa/web', 'cluster.local/ns/*', '*/sa/db', 'a', 'b', 'GET', '/p*', '10.200.1.0/24', 'x*y');
const strings = fc.array(matchString, { minLength: 1, maxLength: 3 });

const namespaceDoc = fc.record({ apiVersion: fc.constant('v1'), kind: fc.constant('Namespace'), metadata: fc.record({ name: ns, labels: maybe(labels) }) });

const serviceDoc = fc.record({
  apiVersion: fc.constant('v1'),
  kind: fc.constant('Service'),
  metadata: fc.record({ name, namespace: ns, labels: maybe(labels) }),
  spec: fc.record({
    clusterIP: maybe(fc.constantFrom('10.96.0.10', '10.96.0.11', '10.96.0.12', 'None')),
    selector: maybe(fc.record({ app })),
    ports: fc.array(
      fc.record({
        name: maybe(fc.constantFrom('http', 'grpc', 'tcp-db')),
        port,
        targetPort: maybe(fc.oneof(port, fc.constantFrom('http-web'))),
        appProtocol: maybe(fc.constantFrom('http', 'grpc', 'tcp')),
      }),
      { maxLength: 2 },
    ),
  }),
});

const workloadDoc = fc.record({
  apiVersion: fc.constant('nodemesh.io/v1alpha1'),
  kind: fc.constant('Workload'),
  metadata: fc.record({ name: fc.constantFrom('web-1', 'web-2', 'db-1', 'api-1', 'wp-1'), namespace: ns, labels: maybe(labels) }),
  spec: fc.record({
    node: fc.constantFrom(...NODES),
    addresses: fc.array(ip, { minLength: 1, maxLength: 2 }),
    serviceAccount: maybe(name),
    ports: maybe(fc.array(fc.record({ name: fc.constantFrom('http-web', 'grpc'), port }), { maxLength: 2 })),
  }),
});

const gatewayDoc = fc.record({
  apiVersion: fc.constant('gateway.networking.k8s.io/v1'),
  kind: fc.constant('Gateway'),
  metadata: fc.record({ name: fc.constantFrom('wp', 'wp2'), namespace: ns, labels: maybe(labels) }),
  spec: fc.record({
    gatewayClassName: fc.constantFrom('nodemesh-waypoint', 'other'),
    listeners: fc.constant([{ name: 'mesh', port: 15008, protocol: 'HBONE' }]),
    addresses: maybe(fc.array(fc.record({ type: fc.constant('IPAddress'), value: ip }), { maxLength: 1 })),
  }),
});

const source = fc.record(
  {
    principals: maybe(strings),
    notPrincipals: maybe(strings),
    namespaces: maybe(strings),
    notNamespaces: maybe(strings),
    ipBlocks: maybe(fc.array(fc.constantFrom('10.200.1.0/24', '10.0.0.0/8', '10.200.2.5', '::/0'), { minLength: 1, maxLength: 2 })),
  },
  { requiredKeys: [] },
);
const operation = fc.record(
  {
    ports: maybe(fc.array(fc.constantFrom('80', '8080', '5432', '0', 'x'), { minLength: 1, maxLength: 2 })),
    methods: maybe(strings),
    paths: maybe(strings),
    hosts: maybe(strings),
  },
  { requiredKeys: [] },
);
const rule = fc.record(
  {
    from: maybe(fc.array(fc.record({ source }), { maxLength: 2 })),
    to: maybe(fc.array(fc.record({ operation }), { maxLength: 2 })),
    when: maybe(
      fc.array(fc.record({ key: fc.constantFrom('source.ip', 'destination.port', 'request.headers[x]', 'bogus'), values: strings }), { maxLength: 1 }),
    ),
  },
  { requiredKeys: [] },
);
const policyDoc = fc.record({
  apiVersion: fc.constant('security.nodemesh.io/v1alpha1'),
  kind: fc.constant('AuthorizationPolicy'),
  metadata: fc.record({ name: fc.constantFrom('p1', 'p2', 'p3'), namespace: fc.constantFrom('default', 'a', 'nodemesh-system') }),
  spec: fc.record(
    {
      selector: maybe(fc.record({ matchLabels: fc.record({ app }) })),
      targetRefs: maybe(
        fc.array(fc.record({ kind: fc.constantFrom('Service', 'Gateway'), group: fc.constantFrom('', 'gateway.networking.k8s.io'), name }), { maxLength: 1 }),
      ),
      action: maybe(fc.constantFrom('ALLOW', 'DENY', 'AUDIT', 'CUSTOM')),
      rules: maybe(fc.array(rule, { maxLength: 3 })),
    },
    { requiredKeys: [] },
  ),
});

const peerAuthDoc = fc.record({
  apiVersion: fc.constant('security.nodemesh.io/v1alpha1'),
  kind: fc.constant('PeerAuthentication'),
  metadata: fc.record({ name: fc.constantFrom('pa1', 'default'), namespace: fc.constantFrom('default', 'a', 'nodemesh-system') }),
  spec: fc.record(
    {
      selector: maybe(fc.record({ matchLabels: fc.record({ app }) })),
      mtls: maybe(fc.record({ mode: fc.constantFrom('STRICT', 'PERMISSIVE', 'UNSET') })),
      portLevelMtls: maybe(fc.dictionary(fc.constantFrom('80', '8080', '0'), fc.record({ mode: fc.constantFrom('STRICT', 'PERMISSIVE') }), { maxKeys: 2 })),
    },
    { requiredKeys: [] },
  ),
});

const httpRouteDoc = fc.record({
  apiVersion: fc.constant('gateway.networking.k8s.io/v1'),
  kind: fc.constant('HTTPRoute'),
  metadata: fc.record({ name: fc.constantFrom('r1', 'r2'), namespace: ns }),
  spec: fc.record({
    parentRefs: fc.array(fc.record({ name, kind: maybe(fc.constantFrom('Service', 'Gateway')), port: maybe(port) }), { minLength: 1, maxLength: 2 }),
    rules: maybe(
      fc.array(
        fc.record(
          {
            matches: maybe(
              fc.array(
                fc.record(
                  {
                    path: maybe(
                      fc.record({
                        type: fc.constantFrom('PathPrefix', 'Exact', 'RegularExpression'),
                        value: fc.constantFrom('/', '/a', '^/r/[a-z]+$', '(a+)+$', '['),
                      }),
                    ),
                    method: maybe(fc.constantFrom('GET', 'POST')),
                  },
                  { requiredKeys: [] },
                ),
                { maxLength: 2 },
              ),
            ),
            backendRefs: maybe(fc.array(fc.record({ name, port: maybe(port), weight: maybe(fc.integer({ min: -1, max: 10 })) }), { maxLength: 2 })),
            timeouts: maybe(fc.record({ request: fc.constantFrom('1s', '10ms', 'x') })),
          },
          { requiredKeys: [] },
        ),
        { maxLength: 2 },
      ),
    ),
  }),
});

/** One resource document (mostly valid) of any kind the config API accepts. */
export const resourceDocument: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  namespaceDoc,
  serviceDoc,
  workloadDoc,
  gatewayDoc,
  policyDoc,
  peerAuthDoc,
  httpRouteDoc,
) as fc.Arbitrary<Record<string, unknown>>;

/**
 * A batch of documents that, applied one by one, leaves a dense store. At most 12: over this small
 * universe (3 namespaces, 5 names) 12 documents already give stores with Services selecting
 * Workloads, waypoints in use and policies targeting them; validating 25 took most of each input's
 * time (profiled: ~45 % in validation), which kept the translate target far from 1M inputs.
 */
export const resourceBatch = fc.array(resourceDocument, { minLength: 1, maxLength: 12 });
