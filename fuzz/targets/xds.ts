// The xDS decoders of the node proxy (workload API: Address, Authorization, PeerAuthentication)
// and of the waypoint (Envoy Cluster, ClusterLoadAssignment, Listener, RouteConfiguration, which
// it also compiles): a pushed resource is accepted or the whole response is rejected (NACK) —
// never an exception out of ResourceSet.apply, whatever the bytes. Inputs are random bytes and
// real encodings (from translating a small mesh) with bytes flipped, cut or spliced.
import fc from 'fast-check';
import { Cluster } from '../../api/gen/envoy/config/cluster/v3/cluster';
import { ClusterLoadAssignment } from '../../api/gen/envoy/config/endpoint/v3/endpoint';
import { Listener } from '../../api/gen/envoy/config/listener/v3/listener';
import { RouteConfiguration } from '../../api/gen/envoy/config/route/v3/route';
import { Resource } from '../../api/gen/envoy/service/discovery/v3/discovery';
import { Address, Authorization, PeerAuthentication } from '../../api/gen/nodemesh/workload/v1/workload';
import { ResourceSet } from '../../common/xds/resource-set';
import type { ResourceType } from '../../common/xds/types';
import { translateEnvoy } from '../../control/envoy/translate';
import { validateResource, type AnyResource } from '../../control/resources';
import { MemorySnapshot } from '../../control/store/snapshot';
import { translateWorkloadApi } from '../../control/workload/translate';
import { WORKLOAD_API_RESOURCE_TYPES } from '../../node-proxy/state/resource-types';
import { WAYPOINT_TYPES } from '../../waypoint/xds/resources';
import { target } from '../target';

const SEED_MESH = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default', labels: { 'nodemesh.io/dataplane-mode': 'ambient' } } },
  {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'wp', namespace: 'default', labels: { 'nodemesh.io/waypoint-for': 'service' } },
    spec: {
      gatewayClassName: 'nodemesh-waypoint',
      listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }],
      addresses: [{ type: 'IPAddress', value: '10.200.1.50' }],
    },
  },
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'default', labels: { 'nodemesh.io/use-waypoint': 'wp' } },
    spec: {
      clusterIP: '10.96.0.10',
      selector: { app: 'web' },
      ports: [
        { name: 'http', port: 80, targetPort: 8080 },
        { name: 'grpc', port: 9090, appProtocol: 'grpc' },
      ],
    },
  },
  {
    apiVersion: 'nodemesh.io/v1alpha1',
    kind: 'Workload',
    metadata: { name: 'web-1', namespace: 'default', labels: { app: 'web' } },
    spec: { node: 'node1', addresses: ['10.200.1.5'], serviceAccount: 'web' },
  },
  {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'r', namespace: 'default' },
    spec: {
      parentRefs: [{ name: 'web', kind: 'Service', group: '' }],
      rules: [
        {
          matches: [{ path: { type: 'RegularExpression', value: '^/r/[a-z]+$' }, headers: [{ name: 'x', value: 'y' }] }],
          backendRefs: [{ name: 'web', port: 80 }],
          timeouts: { request: '2s' },
          retry: { attempts: 2, codes: [503] },
        },
      ],
    },
  },
  {
    apiVersion: 'security.nodemesh.io/v1alpha1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'p', namespace: 'default' },
    spec: {
      selector: { matchLabels: { app: 'web' } },
      action: 'ALLOW',
      rules: [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/*'], ipBlocks: ['10.200.0.0/16'] } }], to: [{ operation: { ports: ['8080'] } }] }],
    },
  },
  {
    apiVersion: 'security.nodemesh.io/v1alpha1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'l7', namespace: 'default' },
    spec: { targetRefs: [{ kind: 'Service', group: '', name: 'web' }], action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] },
  },
  {
    apiVersion: 'security.nodemesh.io/v1alpha1',
    kind: 'PeerAuthentication',
    metadata: { name: 'pa', namespace: 'default' },
    spec: { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '9090': { mode: 'PERMISSIVE' } } },
  },
];

interface Seeded {
  readonly type: ResourceType<unknown>;
  readonly seeds: Uint8Array[];
}

let seeded: Seeded[] | undefined;
function seededTypes(): Seeded[] {
  if (seeded) return seeded;
  const snap = MemorySnapshot.of(1, SEED_MESH.map((d) => validateResource(d)) as AnyResource[]);
  const wl = translateWorkloadApi(snap);
  const envoy = translateEnvoy(snap);
  const byType = new Map<string, Uint8Array[]>([
    [WORKLOAD_API_RESOURCE_TYPES[0]!.typeUrl, [...wl.addresses.values()].map((m) => Address.encode(m).finish())],
    [WORKLOAD_API_RESOURCE_TYPES[1]!.typeUrl, [...wl.authorizations.values()].map((m) => Authorization.encode(m).finish())],
    [WORKLOAD_API_RESOURCE_TYPES[2]!.typeUrl, [...wl.peerAuthentications.values()].map((m) => PeerAuthentication.encode(m).finish())],
    [WAYPOINT_TYPES[0].typeUrl, [...envoy.clusters.values()].map((m) => Cluster.encode(m).finish())],
    [WAYPOINT_TYPES[1].typeUrl, [...envoy.endpoints.values()].map((m) => ClusterLoadAssignment.encode(m).finish())],
    [WAYPOINT_TYPES[2].typeUrl, [...envoy.listeners.values()].map((m) => Listener.encode(m).finish())],
    [WAYPOINT_TYPES[3].typeUrl, [...envoy.routes.values()].map((m) => RouteConfiguration.encode(m).finish())],
  ]);
  const types = [...WORKLOAD_API_RESOURCE_TYPES, ...(WAYPOINT_TYPES as unknown as ResourceType<unknown>[])];
  seeded = types.map((type) => ({ type, seeds: byType.get(type.typeUrl) ?? [] }));
  for (const s of seeded) if (s.seeds.length === 0) throw new Error(`no seed encodings for ${s.type.typeUrl}`);
  return seeded;
}

type Mutation = { readonly at: number; readonly op: 'flip' | 'cut' | 'insert' | 'set'; readonly byte: number };

interface Input {
  readonly type: number;
  readonly seed: number;
  readonly random?: Uint8Array;
  readonly mutations: readonly Mutation[];
  readonly name: string;
}

function mutate(base: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let b = Array.from(base);
  for (const m of mutations) {
    const at = b.length === 0 ? 0 : m.at % b.length;
    if (m.op === 'flip') b[at] = (b[at] ?? 0) ^ (1 << (m.byte & 7));
    else if (m.op === 'set') b[at] = m.byte;
    else if (m.op === 'cut') b = b.slice(0, at);
    else b.splice(at, 0, m.byte);
  }
  return Uint8Array.from(b);
}

function checkDecode(kinds: 'node-proxy' | 'waypoint') {
  return (i: Input): void => {
    const all = seededTypes();
    const pool = kinds === 'node-proxy' ? all.slice(0, 3) : all.slice(3);
    const t = pool[i.type % pool.length]!;
    const bytes = i.random ?? mutate(t.seeds[i.seed % t.seeds.length]!, i.mutations);
    const set = new ResourceSet(t.type);
    // throws only on a bug: a bad resource must come back as { ok: false } (a NACK)
    const resource = Resource.fromPartial({ name: i.name, version: '1', resource: { typeUrl: t.type.typeUrl, value: Buffer.from(bytes) } });
    set.apply({ typeUrl: t.type.typeUrl, resources: [resource], removedResources: [] }, true);
  };
}

const input = fc.record({
  type: fc.nat(),
  seed: fc.nat(),
  random: fc.option(fc.uint8Array({ maxLength: 400 }), { nil: undefined, freq: 4 }),
  mutations: fc.array(fc.record({ at: fc.nat(), op: fc.constantFrom('flip', 'cut', 'insert', 'set'), byte: fc.integer({ min: 0, max: 255 }) }), {
    maxLength: 6,
  }),
  name: fc.constantFrom('Workload/default/web-1', 'default/p', 'x', ''),
}) as fc.Arbitrary<Input>;

export const xdsNodeProxyTarget = target({
  name: 'xds-node-proxy',
  what: "the node proxy's workload API decoders and validators (ResourceSet.apply) on random and mutated encodings",
  arbitrary: input,
  unitRuns: 1_500,
  check: checkDecode('node-proxy'),
});

export const xdsWaypointTarget = target({
  name: 'xds-waypoint',
  what: "the waypoint's Envoy decoders and compilers (ResourceSet.apply) on random and mutated encodings",
  arbitrary: input,
  unitRuns: 1_000,
  check: checkDecode('waypoint'),
});
