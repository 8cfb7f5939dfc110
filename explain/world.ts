// The mesh as each proxy would hold it for one store snapshot, built with the control plane's own
// translations and the proxies' own decoders and state:
//   - a node proxy's WorkloadState: the workload API (control/workload) encoded and decoded as the
//     node proxy's xDS client does, each resource checked by the node proxy's validator (a
//     resource it would refuse is left out and noted), applied to a WorkloadState;
//   - a waypoint's ConfigState: the Envoy resources of that waypoint's view (control/envoy's
//     publisher), decoded and compiled by the waypoint's resource types and applied in the
//     waypoint's order (clusters, endpoints, listeners, routes).
// Pure apart from building: no sockets, no clock. One World per snapshot revision (explainer.ts caches it).
import type { Address, Authorization, PeerAuthentication } from '../api/gen/nodemesh/workload/v1/workload';
import {
  Address as AddressCodec,
  Authorization as AuthorizationCodec,
  PeerAuthentication as PeerAuthenticationCodec,
} from '../api/gen/nodemesh/workload/v1/workload';
import { createLogger } from '../common/log';
import type { ResourceType } from '../common/xds/types';
import { EnvoyPublisher } from '../control/envoy/publisher';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL } from '../control/envoy/names';
import { waypointView } from '../control/envoy/translate';
import { DEFAULT_ENVOY_OPTIONS, MeshIndex, type EnvoyTranslateOptions } from '../control/envoy/model';
import { policiesFor } from '../control/envoy/rbac';
import type { Snapshot } from '../control/store/store';
import { DEFAULT_TRANSLATE_OPTIONS, translateWorkloadApi, type TranslateOptions, type WorkloadApiState } from '../control/workload/translate';
import { AddressResource, AuthorizationResource, PeerAuthenticationResource } from '../node-proxy/state/resource-types';
import { WorkloadState } from '../node-proxy/state/workload-state';
import type { CompiledCluster, UpstreamEndpoint } from '../waypoint/config/clusters';
import type { CompiledListener } from '../waypoint/config/listeners';
import type { RouteTable } from '../waypoint/config/routes';
import { ConfigState } from '../waypoint/proxy/state';
import { ClusterType, EndpointType, ListenerType, RouteType, type Compiled } from '../waypoint/xds/resources';

export interface WorldOptions {
  readonly trustDomain: string;
  readonly rootNamespace: string;
  readonly domainSuffix: string;
}

export const DEFAULT_WORLD_OPTIONS: WorldOptions = {
  trustDomain: DEFAULT_TRANSLATE_OPTIONS.trustDomain,
  rootNamespace: DEFAULT_TRANSLATE_OPTIONS.rootNamespace,
  domainSuffix: DEFAULT_TRANSLATE_OPTIONS.domainSuffix,
};

/** The settings the control plane's translations read from its environment (control/xds/component.ts, control/envoy/component.ts). */
export function worldOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): WorldOptions {
  return {
    trustDomain: env.NODEMESH_TRUST_DOMAIN || DEFAULT_WORLD_OPTIONS.trustDomain,
    rootNamespace: env.NODEMESH_ROOT_NAMESPACE || DEFAULT_WORLD_OPTIONS.rootNamespace,
    domainSuffix: DEFAULT_WORLD_OPTIONS.domainSuffix,
  };
}

/** A waypoint's configuration as it would serve it, and what it would refuse (NACK). */
export interface WaypointConfig {
  readonly state: ConfigState;
  /** Resources that do not compile: the waypoint would refuse the whole response of that type. */
  readonly rejected: readonly string[];
}

/** One resource through the proxy's decoder and validator: the value, or why it is refused. */
function throughDecoder<T>(type: ResourceType<T>, name: string, bytes: Uint8Array): { value: T } | { problem: string } {
  const value = type.decode(bytes);
  const problem = type.validate?.(name, value);
  return problem ? { problem } : { value };
}

export class World {
  readonly revision: number;
  readonly workloadApi: WorkloadApiState;
  /** Workload API resources a node proxy would refuse, with why. */
  readonly refused: string[] = [];
  private readonly addresses: Array<{ name: string; version: string; value: Address }> = [];
  private readonly authorizations: Array<{ name: string; version: string; value: Authorization }> = [];
  private readonly peerAuthentications: Array<{ name: string; version: string; value: PeerAuthentication }> = [];
  private shared: WorkloadState | undefined;
  private readonly waypoints = new Map<string, WaypointConfig>();
  private envoyPublisher: EnvoyPublisher | undefined;
  private readonly envoyOptions: EnvoyTranslateOptions;
  private meshIndex: MeshIndex | undefined;

  constructor(
    readonly snapshot: Snapshot,
    readonly options: WorldOptions = DEFAULT_WORLD_OPTIONS,
  ) {
    this.revision = snapshot.revision;
    const translate: TranslateOptions = { trustDomain: options.trustDomain, rootNamespace: options.rootNamespace, domainSuffix: options.domainSuffix };
    this.workloadApi = translateWorkloadApi(snapshot, translate);
    const take = <T>(
      type: ResourceType<T>,
      codec: { encode(m: T): { finish(): Uint8Array } },
      from: ReadonlyMap<string, T>,
      into: Array<{ name: string; version: string; value: T }>,
    ) => {
      for (const [name, message] of from) {
        const r = throughDecoder(type, name, codec.encode(message).finish());
        if ('problem' in r) this.refused.push(`node proxies refuse ${name}: ${r.problem}`);
        else into.push({ name, version: String(this.revision), value: r.value });
      }
    };
    take(AddressResource, AddressCodec, this.workloadApi.addresses, this.addresses);
    take(AuthorizationResource, AuthorizationCodec, this.workloadApi.authorizations, this.authorizations);
    take(PeerAuthenticationResource, PeerAuthenticationCodec, this.workloadApi.peerAuthentications, this.peerAuthentications);
    const envoyOptions: EnvoyTranslateOptions = {
      ...DEFAULT_ENVOY_OPTIONS,
      trustDomain: options.trustDomain,
      rootNamespace: options.rootNamespace,
      domainSuffix: options.domainSuffix,
    };
    this.envoyOptions = envoyOptions;
  }

  /** The Envoy translation, made when a waypoint is first asked about. */
  private get envoy(): EnvoyPublisher {
    if (!this.envoyPublisher) {
      this.envoyPublisher = new EnvoyPublisher(undefined, { logger: createLogger('explain', 'silent'), translate: this.envoyOptions });
      this.envoyPublisher.publish(this.snapshot);
    }
    return this.envoyPublisher;
  }

  /**
   * The workload state node proxies build from what the control plane pushes. Every node proxy gets
   * the same resources; a WorkloadState differs per node only in which workloads are local
   * (isLocalEnrolled: this node's enrolled ones), which node-step.ts's PlanView answers for the
   * node in question — so one state serves every node (building one per node would cost a copy of
   * the whole mesh per node).
   */
  get state(): WorkloadState {
    if (!this.shared) {
      const s = new WorkloadState('');
      s.applyAddresses({ updated: this.addresses, removed: [] });
      s.applyAuthorizations({ updated: this.authorizations, removed: [] });
      s.applyPeerAuthentications({ updated: this.peerAuthentications, removed: [] });
      this.shared = s;
    }
    return this.shared;
  }

  /** The AuthorizationPolicies (`ns/name`) a Service's waypoint enforces, by action (control/envoy/rbac.ts policiesFor). */
  waypointPolicies(namespace: string, name: string): { readonly DENY: string[]; readonly ALLOW: string[] } {
    this.meshIndex ??= new MeshIndex(this.snapshot, this.envoyOptions);
    const svc = this.meshIndex.services.get(`${namespace}/${name}`);
    const out = { DENY: [] as string[], ALLOW: [] as string[] };
    for (const p of svc ? policiesFor(this.meshIndex, svc) : []) {
      const action = p.spec.action === 'DENY' ? 'DENY' : p.spec.action === 'ALLOW' ? 'ALLOW' : undefined;
      if (action) out[action].push(`${p.metadata.namespace ?? ''}/${p.metadata.name}`);
    }
    return out;
  }

  /** The configuration the waypoint of Gateway `ns/name` serves. */
  waypointConfig(gateway: string): WaypointConfig {
    let c = this.waypoints.get(gateway);
    if (c) return c;
    const [ns, name] = gateway.split('/') as [string, string];
    const view = waypointView(ns, name);
    const state = new ConfigState();
    const rejected: string[] = [];
    // The waypoint's order (make before break): clusters, endpoints, listeners, routes.
    const apply = <C>(typeUrl: string, type: ResourceType<Compiled<C>>, set: (name: string, c: C) => void) => {
      for (const [resourceName, r] of this.envoy.viewFor(view, typeUrl)) {
        const v = type.decode(r.value);
        if (v.error !== undefined) rejected.push(`${resourceName}: ${v.error}`);
        else set(resourceName, v.compiled);
      }
    };
    apply<CompiledCluster>(CLUSTER_TYPE_URL, ClusterType, (n, cl) => state.setCluster(cl, n));
    apply<UpstreamEndpoint[]>(ENDPOINT_TYPE_URL, EndpointType, (n, e) => state.setEndpoints(n, e));
    apply<CompiledListener>(LISTENER_TYPE_URL, ListenerType, (n, l) => state.setListener(l, n));
    apply<RouteTable>(ROUTE_TYPE_URL, RouteType, (n, rt) => state.routes.set(n, rt));
    c = { state, rejected };
    this.waypoints.set(gateway, c);
    return c;
  }
}
