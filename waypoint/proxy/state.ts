// The configuration the waypoint is serving: compiled listeners, route tables, clusters (with
// their live balancer and circuit-breaker counters) and EDS endpoints, plus the raw resources for
// the admin config dump. Replaced piecewise as xDS updates are accepted.
import type { CompiledCluster, UpstreamEndpoint } from '../config/clusters';
import type { CompiledListener } from '../config/listeners';
import type { RouteTable } from '../config/routes';
import { Balancer } from './balancer';

export class ClusterRuntime {
  active = 0;
  pending = 0;
  retries = 0;
  readonly balancer: Balancer;
  constructor(public config: CompiledCluster) {
    this.balancer = new Balancer(config.lb, config.outlier);
    if (config.staticEndpoints) this.balancer.setEndpoints(config.staticEndpoints);
  }
}

export interface DumpEntry {
  readonly name: string;
  readonly version: string;
  readonly resource: unknown;
}

export class ConfigState {
  readonly listeners = new Map<string, CompiledListener>();
  readonly routes = new Map<string, RouteTable>();
  readonly clusters = new Map<string, ClusterRuntime>();
  readonly endpoints = new Map<string, UpstreamEndpoint[]>();
  /** type -> name -> raw resource (JSON) with version, for /config_dump. */
  readonly dump = new Map<string, Map<string, DumpEntry>>();
  private readonly listenerWatchers = new Set<() => void>();
  /**
   * The process started and has not had a complete xDS state yet (every type once): requests are
   * held (proxy/warming.ts) rather than served from part of the configuration.
   */
  firstConfigPending = false;

  onListenersChanged(f: () => void): void {
    this.listenerWatchers.add(f);
  }

  setListener(l: CompiledListener | undefined, name: string): void {
    if (l) this.listeners.set(name, l);
    else this.listeners.delete(name);
    for (const f of this.listenerWatchers) f();
  }

  setCluster(c: CompiledCluster | undefined, name: string): void {
    if (!c) {
      this.clusters.delete(name);
      return;
    }
    const cur = this.clusters.get(name);
    if (cur) {
      cur.config = c;
      cur.balancer.configure(c.lb, c.outlier);
      if (c.staticEndpoints) cur.balancer.setEndpoints(c.staticEndpoints);
      else cur.balancer.setEndpoints(this.endpoints.get(c.edsName!) ?? []);
    } else {
      const rt = new ClusterRuntime(c);
      if (c.edsName) rt.balancer.setEndpoints(this.endpoints.get(c.edsName) ?? []);
      this.clusters.set(name, rt);
    }
  }

  setEndpoints(edsName: string, endpoints: UpstreamEndpoint[] | undefined): void {
    if (endpoints) this.endpoints.set(edsName, endpoints);
    else this.endpoints.delete(edsName);
    for (const rt of this.clusters.values()) if (rt.config.edsName === edsName) rt.balancer.setEndpoints(endpoints ?? []);
  }

  record(type: string, entry: DumpEntry | undefined, name: string): void {
    let m = this.dump.get(type);
    if (!m) this.dump.set(type, (m = new Map()));
    if (entry) m.set(name, entry);
    else m.delete(name);
  }

  /** The listener serving a port the waypoint listens on. */
  listenerForPort(port: number): CompiledListener | undefined {
    for (const l of this.listeners.values()) if (l.port === port && l.config.kind !== 'connect') return l;
    return undefined;
  }

  /**
   * The listener an HBONE CONNECT to `authority` (VIP:port) is served by: through the HBONE
   * listener's CONNECT routes (authority -> cluster -> its internal listener) when the control
   * plane sent one (several Services may share a port; an authority it does not name is not
   * served), else the listener for the port.
   */
  listenerForTunnel(authority: string, port: number): CompiledListener | undefined {
    const want = authority.toLowerCase();
    let routed = false;
    for (const l of this.listeners.values()) {
      if (l.config.kind !== 'connect') continue;
      routed = true;
      const cluster = l.config.targets.get(want);
      if (!cluster) continue;
      const internal = this.clusters.get(cluster)?.config.staticEndpoints?.find((e) => e.internalListener)?.internalListener ?? cluster;
      const target = this.listeners.get(internal);
      if (target && target.config.kind !== 'connect') return target;
    }
    // With CONNECT routes, an authority they do not name is not served (Envoy: 404, no route).
    return routed ? undefined : this.listenerForPort(port);
  }

  routeTable(l: CompiledListener): RouteTable | undefined {
    if (l.config.kind !== 'http') return undefined;
    return l.config.inlineRoutes ?? (l.config.rdsName ? this.routes.get(l.config.rdsName) : undefined);
  }
}
