// The mesh as Envoy translation sees it, indexed once per store snapshot: Services with their
// ports, host names and selected Workloads; the waypoints (Gateways of class nodemesh-waypoint)
// and the Services that use each; the HTTPRoutes attached to each Service port.
import {
  DATAPLANE_MODE_LABEL,
  meshLabel,
  USE_WAYPOINT_LABEL,
  USE_WAYPOINT_NAMESPACE_LABEL,
  WAYPOINT_FOR_LABEL,
  WAYPOINT_GATEWAY_CLASS,
  isWaypointClass,
  matchesLabels,
  type Gateway,
  type HTTPRoute,
  type Service,
  type ServicePort,
  type Workload,
} from '../resources';
import type { Snapshot } from '../store/store';
import { serviceHost } from './names';

export interface EnvoyTranslateOptions {
  /** Service host names are <name>.<namespace>.svc.<domainSuffix>. */
  readonly domainSuffix: string;
  /** Trust domain of SPIFFE IDs (RBAC principals). */
  readonly trustDomain: string;
  /** Policies in this namespace apply mesh-wide. */
  readonly rootNamespace: string;
  /** Files the waypoint's Envoy reads its HBONE certificate, key and trust bundle from. */
  readonly certFiles: { readonly chain: string; readonly key: string; readonly roots: string };
}

export const DEFAULT_ENVOY_OPTIONS: EnvoyTranslateOptions = {
  domainSuffix: 'cluster.local',
  trustDomain: 'cluster.local',
  rootNamespace: 'nodemesh-system',
  certFiles: {
    chain: '/var/run/nodemesh/certs/cert-chain.pem',
    key: '/var/run/nodemesh/certs/key.pem',
    roots: '/var/run/nodemesh/certs/root-cert.pem',
  },
};

/** The same enrolment rule as the workload API: the Workload's dataplane-mode label wins over its Namespace's. */
function enrolled(w: Workload, nsLabels: Record<string, string>): boolean {
  return (meshLabel(w.metadata.labels, DATAPLANE_MODE_LABEL) ?? meshLabel(nsLabels, DATAPLANE_MODE_LABEL)) === 'ambient';
}

export interface ServiceInfo {
  readonly service: Service;
  readonly namespace: string;
  readonly name: string;
  readonly host: string;
  /** The VIP, when the Service has one (not headless). */
  readonly vip: string | undefined;
  readonly workloads: readonly Workload[];
  /** `ns/name` of the waypoint Gateway this Service uses, if any. */
  readonly waypoint: string | undefined;
  /** The selected Workloads that are enrolled (HBONE): reached through the tunnel, not in plaintext. */
  readonly hbone: ReadonlySet<Workload>;
  /** The Namespace object (its labels decide enrolment), for change detection. */
  readonly namespaceObject: unknown;
}

export interface WaypointInfo {
  readonly gateway: Gateway;
  readonly key: string;
  /** Services whose traffic this waypoint handles, sorted by host. */
  readonly services: ServiceInfo[];
}

/** Is this port carried as opaque TCP rather than HTTP (waypoint uses tcp_proxy)? */
export function isTcpPort(p: ServicePort): boolean {
  const proto = (p.appProtocol ?? '').toLowerCase();
  if (proto) return ['tcp', 'tls', 'mysql', 'mongo', 'redis'].includes(proto);
  const name = (p.name ?? '').toLowerCase();
  return /^(tcp|tls|mysql|mongo|redis)(-|$)/.test(name);
}

/** Does this port carry HTTP/2 (gRPC, h2c)? The upstream cluster then speaks HTTP/2. */
export function isHttp2Port(p: ServicePort): boolean {
  const proto = (p.appProtocol ?? '').toLowerCase();
  const name = (p.name ?? '').toLowerCase();
  return ['grpc', 'http2', 'h2c', 'kubernetes.io/h2c', 'grpc-web'].includes(proto) || /^(grpc|http2|h2c)(-|$)/.test(name);
}

export class MeshIndex {
  readonly services = new Map<string, ServiceInfo>();
  readonly waypoints = new Map<string, WaypointInfo>();
  readonly warnings: string[] = [];
  private readonly routesByService = new Map<string, HTTPRoute[]>();

  constructor(
    readonly snapshot: Snapshot,
    readonly options: EnvoyTranslateOptions,
  ) {
    const namespaces = snapshot.list('Namespace');
    const nsLabels = new Map(namespaces.map((n) => [n.metadata.name, n.metadata.labels ?? {}]));
    const nsObjects = new Map(namespaces.map((n) => [n.metadata.name, n]));
    // Workloads by namespace and by each label pair, so a selector is matched against the
    // workloads that carry its first pair only (not every workload of the namespace).
    const workloadsByLabel = new Map<string, Workload[]>();
    for (const w of snapshot.list('Workload')) {
      const wns = w.metadata.namespace ?? '';
      for (const [k, v] of Object.entries(w.metadata.labels ?? {})) push(workloadsByLabel, `${wns}\0${k}\0${v}`, w);
    }
    for (const gw of snapshot.list('Gateway')) {
      if (!isWaypointClass(gw.spec.gatewayClassName)) continue;
      const key = `${gw.metadata.namespace ?? ''}/${gw.metadata.name}`;
      this.waypoints.set(key, { gateway: gw, key, services: [] });
    }
    for (const svc of snapshot.list('Service')) {
      const ns = svc.metadata.namespace ?? '';
      const selector = svc.spec.selector;
      const first = selector ? Object.entries(selector)[0] : undefined;
      const workloads = first ? (workloadsByLabel.get(`${ns}\0${first[0]}\0${first[1]}`) ?? []).filter((w) => matchesLabels(w.metadata.labels, selector)) : [];
      const waypoint = this.waypointOf(svc, nsLabels.get(ns) ?? {});
      const info: ServiceInfo = {
        service: svc,
        namespace: ns,
        name: svc.metadata.name,
        host: serviceHost(ns, svc.metadata.name, options.domainSuffix),
        vip: svc.spec.clusterIP && svc.spec.clusterIP !== 'None' ? svc.spec.clusterIP : undefined,
        workloads,
        waypoint,
        hbone: new Set(workloads.filter((w) => enrolled(w, nsLabels.get(ns) ?? {}))),
        namespaceObject: nsObjects.get(ns),
      };
      this.services.set(`${ns}/${svc.metadata.name}`, info);
      if (waypoint) this.waypoints.get(waypoint)?.services.push(info);
    }
    for (const w of this.waypoints.values()) w.services.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
    for (const route of snapshot.list('HTTPRoute')) {
      const routeNs = route.metadata.namespace ?? '';
      const seen = new Set<string>();
      for (const parent of route.spec.parentRefs) {
        const ns = parent.namespace ?? routeNs;
        const key = `${ns}/${parent.name}`;
        if (ns !== routeNs) {
          this.warnings.push(
            `HTTPRoute ${routeNs}/${route.metadata.name}: parentRef Service ${key} is in another namespace; consumer routes are not supported, the parentRef is ignored`,
          );
          continue;
        }
        if (!this.services.has(key)) {
          this.warnings.push(`HTTPRoute ${routeNs}/${route.metadata.name}: parentRef Service ${key} does not exist`);
          continue;
        }
        if (seen.has(key)) continue;
        seen.add(key);
        push(this.routesByService, key, route);
      }
    }
  }

  service(namespace: string, name: string): ServiceInfo | undefined {
    return this.services.get(`${namespace}/${name}`);
  }

  /**
   * HTTPRoutes attached to a Service port: parentRefs naming it by `port` or by `sectionName` (the
   * port's name), or naming neither (every port).
   */
  routesFor(svc: ServiceInfo, port: ServicePort): HTTPRoute[] {
    return (this.routesByService.get(`${svc.namespace}/${svc.name}`) ?? []).filter((r) =>
      r.spec.parentRefs.some(
        (p) =>
          p.name === svc.name &&
          (p.namespace ?? r.metadata.namespace) === svc.namespace &&
          (p.port === undefined || p.port === port.port) &&
          (p.sectionName === undefined || p.sectionName === port.name),
      ),
    );
  }

  /** The waypoint (`ns/name`) a Service uses: its own label wins over its Namespace's; "none" stops. */
  private waypointOf(svc: Service, nsLabels: Readonly<Record<string, string>>): string | undefined {
    const labels = svc.metadata.labels ?? {};
    const own = meshLabel(labels, USE_WAYPOINT_LABEL);
    const name = own ?? meshLabel(nsLabels, USE_WAYPOINT_LABEL);
    if (!name || name === 'none') return undefined;
    const ns = meshLabel(own !== undefined ? labels : nsLabels, USE_WAYPOINT_NAMESPACE_LABEL) ?? svc.metadata.namespace ?? '';
    const key = `${ns}/${name}`;
    const wp = this.waypoints.get(key);
    const who = `Service ${svc.metadata.namespace ?? ''}/${svc.metadata.name}`;
    if (!wp) {
      this.warnings.push(`${who}: waypoint ${key} is not a Gateway of class ${WAYPOINT_GATEWAY_CLASS}; the Service gets no waypoint`);
      return undefined;
    }
    const forWhat = meshLabel(wp.gateway.metadata.labels, WAYPOINT_FOR_LABEL) ?? 'service';
    if (forWhat !== 'service' && forWhat !== 'all') {
      this.warnings.push(`${who}: waypoint ${key} is for ${forWhat} traffic (${WAYPOINT_FOR_LABEL}), not service; the Service gets no waypoint`);
      return undefined;
    }
    return key;
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
