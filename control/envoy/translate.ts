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
import { DEFAULT_ENVOY_OPTIONS, MeshIndex, type EnvoyTranslateOptions } from './model';
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

export function translateEnvoy(snapshot: Snapshot, options: EnvoyTranslateOptions = DEFAULT_ENVOY_OPTIONS): EnvoyConfig {
  const index = new MeshIndex(snapshot, options);
  const listeners = new Map<string, Listener>();
  const routes = new Map<string, RouteConfiguration>();
  const clusters = new Map<string, Cluster>();
  const endpoints = new Map<string, ClusterLoadAssignment>();
  const sharedClusters = new Set<string>();
  const proxyless = new Set<string>();
  for (const svc of index.services.values()) {
    for (const port of svc.service.spec.ports) {
      if (port.protocol !== 'TCP') continue;
      const cluster = outboundClusterName(port.port, svc.host);
      clusters.set(cluster, translateCluster(svc, port));
      sharedClusters.add(cluster);
      endpoints.set(cluster, translateLoadAssignment(svc, port));
      const name = servicePortName(svc.host, port.port);
      routes.set(name, translateRouteConfig(index, svc, port));
      listeners.set(name, translateApiListener(svc, port));
      proxyless.add(name);
    }
  }
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
