// A store snapshot -> every Envoy resource the control plane serves, plus which of them each kind
// of client sees. Pure: the same snapshot gives the same messages. Translation happens once per
// store revision; per-client views (views.ts) only filter the result.
import type { Cluster } from '../../api/gen/envoy/config/cluster/v3/cluster';
import type { ClusterLoadAssignment } from '../../api/gen/envoy/config/endpoint/v3/endpoint';
import type { Listener } from '../../api/gen/envoy/config/listener/v3/listener';
import type { RouteConfiguration } from '../../api/gen/envoy/config/route/v3/route';
import type { Snapshot } from '../store/store';
import { translateCluster, translateLoadAssignment } from './clusters';
import { translateApiListener, translateConnectTerminate, translateInternalCluster, translateServiceListener } from './listeners';
import { DEFAULT_ENVOY_OPTIONS, MeshIndex, type EnvoyTranslateOptions, type ServiceInfo } from './model';
import { outboundClusterName, servicePortName } from './names';
import { translateRouteConfig } from './routes';

/** The view every proxyless gRPC client gets. */
export const PROXYLESS_VIEW = 'proxyless';
/** The view of the waypoint of Gateway ns/name. */
export function waypointView(namespace: string, name: string): string {
  return `waypoint:${namespace}/${name}`;
}

/**
 * What a kind of client sees beyond the shared resources: its listeners and its own clusters.
 * Every client sees every outbound cluster, route configuration and load assignment (routes can
 * send anywhere; RDS and EDS are named subscriptions anyway).
 */
export interface ClientView {
  readonly listeners: ReadonlySet<string>;
  readonly clusters: ReadonlySet<string>;
}

export interface EnvoyConfig {
  readonly revision: number;
  readonly listeners: Map<string, Listener>;
  readonly routes: Map<string, RouteConfiguration>;
  /** Outbound (shared) and waypoint-internal clusters. */
  readonly clusters: Map<string, Cluster>;
  readonly endpoints: Map<string, ClusterLoadAssignment>;
  /** Names of the outbound clusters every client sees. */
  readonly sharedClusters: ReadonlySet<string>;
  readonly views: Map<string, ClientView>;
  readonly warnings: string[];
}

/** What one Service contributes (its ports' clusters, endpoints, routes, api_listeners). */
export interface ServiceOutput {
  readonly clusters: readonly (readonly [string, Cluster])[];
  readonly endpoints: readonly (readonly [string, ClusterLoadAssignment])[];
  readonly routes: readonly (readonly [string, RouteConfiguration])[];
  readonly listeners: readonly (readonly [string, Listener])[];
  readonly warnings: readonly string[];
}

/**
 * Remembers each Service's output with the stored objects it was computed from; store snapshots
 * share unchanged objects, so equal identities mean equal inputs and the output is reused.
 */
export class ServiceOutputCache {
  private entries = new Map<string, { deps: readonly unknown[]; out: ServiceOutput }>();
  private next = new Map<string, { deps: readonly unknown[]; out: ServiceOutput }>();
  hits = 0;

  get(key: string, deps: readonly unknown[]): ServiceOutput | undefined {
    const e = this.entries.get(key);
    if (!e || e.deps.length !== deps.length || e.deps.some((d, i) => d !== deps[i])) return undefined;
    this.hits++;
    this.next.set(key, e);
    return e.out;
  }

  set(key: string, deps: readonly unknown[], out: ServiceOutput): void {
    this.next.set(key, { deps, out });
  }

  /** End of a translation: forget Services that no longer exist. */
  rotate(): void {
    this.entries = this.next;
    this.next = new Map();
  }
}

/** The stored objects a Service's output depends on. */
function serviceDeps(index: MeshIndex, svc: ServiceInfo): unknown[] {
  const deps: unknown[] = [svc.service, svc.namespaceObject, ...svc.workloads];
  const routes = new Set(svc.service.spec.ports.flatMap((p) => index.routesFor(svc, p)));
  for (const r of routes) {
    deps.push(r);
    const routeNs = r.metadata.namespace ?? '';
    for (const rule of r.spec.rules) {
      const refs: { name: string; namespace?: string }[] = [...(rule.backendRefs ?? [])];
      for (const f of rule.filters ?? []) if (f.type === 'RequestMirror') refs.push(f.requestMirror.backendRef);
      for (const ref of refs) deps.push(index.service(ref.namespace ?? routeNs, ref.name)?.service ?? `missing:${ref.namespace ?? routeNs}/${ref.name}`);
    }
  }
  return deps;
}

function translateService(index: MeshIndex, svc: ServiceInfo): ServiceOutput {
  const before = index.warnings.length;
  const clusters: [string, Cluster][] = [];
  const endpoints: [string, ClusterLoadAssignment][] = [];
  const routes: [string, RouteConfiguration][] = [];
  const listeners: [string, Listener][] = [];
  for (const port of svc.service.spec.ports) {
    if (port.protocol !== 'TCP') continue;
    const cluster = outboundClusterName(port.port, svc.host);
    clusters.push([cluster, translateCluster(svc, port)]);
    endpoints.push([cluster, translateLoadAssignment(svc, port, index.options.trustDomain)]);
    const name = servicePortName(svc.host, port.port);
    routes.push([name, translateRouteConfig(index, svc, port)]);
    listeners.push([name, translateApiListener(svc, port)]);
  }
  return { clusters, endpoints, routes, listeners, warnings: index.warnings.splice(before) };
}

export function translateEnvoy(snapshot: Snapshot, options: EnvoyTranslateOptions = DEFAULT_ENVOY_OPTIONS, cache?: ServiceOutputCache): EnvoyConfig {
  const index = new MeshIndex(snapshot, options);
  const listeners = new Map<string, Listener>();
  const routes = new Map<string, RouteConfiguration>();
  const clusters = new Map<string, Cluster>();
  const endpoints = new Map<string, ClusterLoadAssignment>();
  const sharedClusters = new Set<string>();
  const proxyless = new Set<string>();
  const serviceWarnings: string[] = [];
  for (const [key, svc] of index.services) {
    let out: ServiceOutput | undefined;
    if (cache) {
      const deps = serviceDeps(index, svc);
      out = cache.get(key, deps);
      if (!out) cache.set(key, deps, (out = translateService(index, svc)));
    } else {
      out = translateService(index, svc);
    }
    for (const [name, c] of out.clusters) {
      clusters.set(name, c);
      sharedClusters.add(name);
    }
    for (const [name, e] of out.endpoints) endpoints.set(name, e);
    for (const [name, r] of out.routes) routes.set(name, r);
    for (const [name, l] of out.listeners) {
      listeners.set(name, l);
      proxyless.add(name);
    }
    serviceWarnings.push(...out.warnings);
  }
  cache?.rotate();
  index.warnings.push(...serviceWarnings);
  const views = new Map<string, ClientView>([[PROXYLESS_VIEW, { listeners: proxyless, clusters: new Set() }]]);
  for (const wp of index.waypoints.values()) {
    const ns = wp.gateway.metadata.namespace ?? '';
    const viewName = waypointView(ns, wp.gateway.metadata.name);
    const own = new Set<string>();
    const ownClusters = new Set<string>();
    // connect_terminate is per waypoint; its name is the same in every waypoint, so the shared
    // pool keys it by view.
    const ct = translateConnectTerminate(wp, options);
    const ctKey = `${viewName}#${ct.name}`;
    listeners.set(ctKey, ct);
    own.add(ctKey);
    for (const svc of wp.services) {
      for (const port of svc.service.spec.ports) {
        if (port.protocol !== 'TCP') continue;
        const l = translateServiceListener(index, svc, port);
        listeners.set(l.name, l);
        own.add(l.name);
        const c = translateInternalCluster(svc, port);
        clusters.set(c.name, c);
        ownClusters.add(c.name);
      }
    }
    views.set(viewName, { listeners: own, clusters: ownClusters });
  }
  return { revision: snapshot.revision, listeners, routes, clusters, endpoints, sharedClusters, views, warnings: [...new Set(index.warnings)] };
}

/** The resource name a pool key stands for (`<view>#<name>` keys are per-view resources). */
export function resourceNameOf(poolKey: string): string {
  const i = poolKey.indexOf('#');
  return i < 0 ? poolKey : poolKey.slice(i + 1);
}
