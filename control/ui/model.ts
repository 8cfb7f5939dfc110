// What the page shows, built from the control plane's state (pure): the overview streamed to every
// open page (namespaces, nodes, workloads, Services, waypoints, the observed edges, the proxies),
// and the details asked for on a click (a workload, an edge). Sizes: the overview carries a few
// short fields per workload (about 150 bytes each: 1,000 workloads ≈ 150 KB); labels, policies
// and records come only with a detail.
import { DATAPLANE_MODE_LABEL, meshLabel, USE_WAYPOINT_LABEL } from '../../common/contracts/labels';
import type { ObservedRecord, EdgeView, ProxyObservation } from '../observe';
import type { AuthorizationPolicy } from '../resources/authorization-policy';
import { isWaypointClass } from '../resources/gateway';
import { matchesLabels } from '../resources/selectors';
import type { Snapshot } from '../store/store';

export interface UiWorkload {
  readonly id: string;
  readonly namespace: string;
  readonly name: string;
  readonly node: string;
  readonly serviceAccount: string;
  readonly address: string;
  /** Captured by its node proxy (dataplane-mode ambient on it or its namespace). */
  readonly enrolled: boolean;
}

export interface UiService {
  readonly id: string;
  readonly namespace: string;
  readonly name: string;
  readonly vip?: string;
  readonly ports: readonly number[];
  /** The waypoint it uses (ns/name), when labelled. */
  readonly waypoint?: string;
}

export interface UiWaypoint {
  readonly id: string;
  readonly namespace: string;
  readonly name: string;
}

/** One connected proxy: its xDS stream and what it has acknowledged, and whether the observer reads it. */
export interface UiProxy {
  readonly nodeId: string;
  readonly api: string;
  readonly view: string;
  readonly peer: string;
  /** Per type: SYNCED, STALE, NACKED or NOT SENT (as proxy-status). */
  readonly types: Readonly<Record<string, string>>;
  readonly nacks: readonly { type: string; message: string }[];
}

export interface UiEdge extends EdgeView {
  /** Policy refused some or all of it. */
  readonly deniedState: 'none' | 'some' | 'all';
}

export interface UiOverview {
  readonly kind: 'MeshOverview';
  readonly revision: number;
  readonly time: number;
  readonly namespaces: readonly { name: string; enrolled: boolean }[];
  readonly nodes: readonly string[];
  readonly workloads: readonly UiWorkload[];
  readonly services: readonly UiService[];
  readonly waypoints: readonly UiWaypoint[];
  readonly edges: readonly UiEdge[];
  /** Every AuthorizationPolicy and PeerAuthentication, by name (details say what each selects). */
  readonly policies: readonly { kind: string; namespace: string; name: string; action?: string; mode?: string }[];
  readonly proxies: readonly UiProxy[];
  readonly observer: { readonly intervalMs: number; readonly read: number; readonly failing: number; readonly skipped: number };
}

/** What the overview is built from besides the snapshot. */
export interface Observed {
  readonly edges: readonly EdgeView[];
  readonly proxies: readonly UiProxy[];
  readonly observations: readonly ProxyObservation[];
  readonly intervalMs: number;
  readonly skipped: number;
}

const enrolledBy = (labels: Record<string, string> | undefined, nsLabels: Record<string, string> | undefined): boolean =>
  (meshLabel(labels, DATAPLANE_MODE_LABEL) ?? meshLabel(nsLabels, DATAPLANE_MODE_LABEL)) === 'ambient';

export function overview(snap: Snapshot, observed: Observed, now: number = Date.now()): UiOverview {
  const nsLabels = new Map(snap.list('Namespace').map((n) => [n.metadata.name, n.metadata.labels]));
  const workloads: UiWorkload[] = snap.list('Workload').map((w) => ({
    id: `wl:${w.metadata.namespace}/${w.metadata.name}`,
    namespace: w.metadata.namespace ?? 'default',
    name: w.metadata.name,
    node: w.spec.node,
    serviceAccount: w.spec.serviceAccount,
    address: w.spec.addresses[0] ?? '',
    enrolled: enrolledBy(w.metadata.labels, nsLabels.get(w.metadata.namespace ?? 'default')),
  }));
  const services: UiService[] = snap.list('Service').map((s) => {
    const wp = meshLabel(s.metadata.labels, USE_WAYPOINT_LABEL);
    return {
      id: `svc:${s.metadata.namespace}/${s.metadata.name}`,
      namespace: s.metadata.namespace ?? 'default',
      name: s.metadata.name,
      vip: s.spec.clusterIP,
      ports: s.spec.ports.map((p) => p.port),
      ...(wp && wp !== 'none' ? { waypoint: wp.includes('/') ? wp : `${s.metadata.namespace}/${wp}` } : {}),
    };
  });
  const waypoints: UiWaypoint[] = snap
    .list('Gateway')
    .filter((g) => isWaypointClass(g.spec.gatewayClassName))
    .map((g) => ({ id: `wp:${g.metadata.namespace}/${g.metadata.name}`, namespace: g.metadata.namespace ?? 'default', name: g.metadata.name }));
  const namespaces = new Set<string>([...nsLabels.keys(), ...workloads.map((w) => w.namespace), ...services.map((s) => s.namespace)]);
  return {
    kind: 'MeshOverview',
    revision: snap.revision,
    time: now,
    namespaces: [...namespaces].sort().map((name) => ({ name, enrolled: meshLabel(nsLabels.get(name), DATAPLANE_MODE_LABEL) === 'ambient' })),
    nodes: [...new Set(workloads.map((w) => w.node))].sort(),
    workloads,
    services,
    waypoints,
    edges: normalizeEdges(observed.edges, services, workloads, waypoints, snap),
    policies: [
      ...snap
        .list('AuthorizationPolicy')
        .map((p) => ({ kind: 'AuthorizationPolicy', namespace: p.metadata.namespace ?? 'default', name: p.metadata.name, action: p.spec.action })),
      ...snap
        .list('PeerAuthentication')
        .map((p) => ({ kind: 'PeerAuthentication', namespace: p.metadata.namespace ?? 'default', name: p.metadata.name, mode: p.spec.mtls?.mode ?? 'UNSET' })),
    ],
    proxies: observed.proxies,
    observer: {
      intervalMs: observed.intervalMs,
      read: observed.observations.filter((o) => o.error === undefined && o.lastOk !== undefined).length,
      failing: observed.observations.filter((o) => o.error !== undefined).length,
      skipped: observed.skipped,
    },
  };
}

/**
 * The observed edges in the page's names: an endpoint named by address (a waypoint reports the VIP
 * it was asked for) becomes the Service or workload with that address, and an edge into a
 * waypoint's identity is marked as going through it.
 */
function normalizeEdges(
  edges: readonly EdgeView[],
  services: readonly UiService[],
  workloads: readonly UiWorkload[],
  waypoints: readonly UiWaypoint[],
  snap: Snapshot,
): UiEdge[] {
  const byAddress = new Map<string, string>();
  for (const w of workloads) byAddress.set(w.address, w.id);
  for (const s of services) if (s.vip) byAddress.set(s.vip, s.id);
  const norm = (id: string): string => {
    const m = /^(svc|addr):([0-9a-fA-F.:]+)$/.exec(id);
    return (m && byAddress.get(m[2]!)) || id;
  };
  const waypointSa = new Map<string, string>();
  for (const w of waypoints) if (snap.get('Gateway', w.name, w.namespace)) waypointSa.set(`/ns/${w.namespace}/sa/${w.name}`, `${w.namespace}/${w.name}`);
  return edges.map((e) => {
    const viaSa = [...waypointSa.entries()].find(([sa]) => e.destinationPrincipal.endsWith(sa))?.[1];
    const wps = viaSa && !e.waypoints.includes(viaSa) ? [...e.waypoints, viaSa] : e.waypoints;
    const volume = e.reporter === 'waypoint' ? e.requests : e.connections;
    return {
      ...e,
      source: norm(e.source),
      destination: norm(e.destination),
      waypoints: wps,
      deniedState: e.denied === 0 ? 'none' : e.denied >= volume ? 'all' : 'some',
    };
  });
}

/** A policy as the details show it. */
export interface UiPolicy {
  readonly kind: 'AuthorizationPolicy' | 'PeerAuthentication';
  readonly namespace: string;
  readonly name: string;
  readonly action?: string;
  /** How it applies: namespace-wide, by selector, or through targetRefs (at the waypoint). */
  readonly scope: string;
  readonly rules?: number;
  readonly mode?: string;
}

function apPolicy(p: AuthorizationPolicy, scope: string): UiPolicy {
  return {
    kind: 'AuthorizationPolicy',
    namespace: p.metadata.namespace ?? 'default',
    name: p.metadata.name,
    action: p.spec.action,
    scope,
    rules: p.spec.rules?.length ?? 0,
  };
}

/** The AuthorizationPolicies and PeerAuthentications that select a workload (enforced by its node proxy). */
export function policiesForWorkload(snap: Snapshot, namespace: string, name: string): UiPolicy[] {
  const w = snap.get('Workload', name, namespace);
  if (!w) return [];
  const labels = w.metadata.labels;
  const out: UiPolicy[] = [];
  for (const p of snap.list('AuthorizationPolicy', { namespace })) {
    if (p.spec.targetRefs) continue;
    if (!p.spec.selector) out.push(apPolicy(p, 'namespace-wide'));
    else if (matchesLabels(labels, p.spec.selector.matchLabels)) out.push(apPolicy(p, 'selector'));
  }
  for (const pa of snap.list('PeerAuthentication', { namespace })) {
    const sel = pa.spec.selector?.matchLabels;
    if (!sel || matchesLabels(labels, sel))
      out.push({
        kind: 'PeerAuthentication',
        namespace,
        name: pa.metadata.name,
        scope: sel ? 'selector' : 'namespace-wide',
        mode: pa.spec.mtls?.mode ?? 'UNSET',
      });
  }
  return out;
}

/** The AuthorizationPolicies that target a Service (targetRefs: enforced at its waypoint). */
export function policiesForService(snap: Snapshot, namespace: string, name: string): UiPolicy[] {
  return snap
    .list('AuthorizationPolicy', { namespace })
    .filter((p) => p.spec.targetRefs?.some((r) => r.kind === 'Service' && r.name === name && (r.namespace ?? namespace) === namespace))
    .map((p) => apPolicy(p, 'targetRefs (at the waypoint)'));
}

/** The policies of a graph node (`wl:ns/name`, `svc:ns/name`). */
export function policiesFor(snap: Snapshot, id: string): UiPolicy[] {
  const m = /^(wl|svc):([^/]+)\/(.+)$/.exec(id);
  if (!m) return [];
  const [, kind, ns, name] = m as unknown as [string, string, string, string];
  if (kind === 'wl') return policiesForWorkload(snap, ns, name);
  // A Service: its own (at the waypoint), then those of the workloads it selects.
  const svc = snap.get('Service', name, ns);
  const out = policiesForService(snap, ns, name);
  const seen = new Set(out.map((p) => `${p.kind}/${p.namespace}/${p.name}`));
  if (svc?.spec.selector) {
    for (const w of snap.list('Workload', { namespace: ns })) {
      if (!matchesLabels(w.metadata.labels, svc.spec.selector)) continue;
      for (const p of policiesForWorkload(snap, ns, w.metadata.name)) {
        const k = `${p.kind}/${p.namespace}/${p.name}`;
        if (!seen.has(k)) {
          seen.add(k);
          out.push(p);
        }
      }
    }
  }
  return out;
}

/** Recent records of one edge: the node proxies' by workload names, the waypoints' by the source's identity. */
export function recordsForEdge(
  records: readonly ObservedRecord[],
  edge: { readonly source: string; readonly destination: string; readonly sourcePrincipal?: string },
): ObservedRecord[] {
  const wl = (id: string): string | undefined => (id.startsWith('wl:') ? id.slice(3) : undefined);
  const svc = /^svc:([^/:]+)\/(.+)$/.exec(edge.destination);
  const s = wl(edge.source);
  const d = wl(edge.destination);
  return records.filter((r) => {
    const src = (r.src ?? {}) as { workload?: string; identity?: string };
    const dst = (r.dst ?? {}) as { workload?: string; service?: string };
    if (r.proxyKind === 'waypoint') {
      if (!edge.sourcePrincipal || src.identity !== edge.sourcePrincipal) return false;
    } else if (s !== undefined ? src.workload !== s : src.workload !== undefined) return false;
    if (edge.destination.startsWith('svc:') && !svc) return dst.service === edge.destination.slice(4);
    if (svc) {
      const host = `${svc[2]}.${svc[1]}`;
      const cluster = typeof r.cluster === 'string' ? r.cluster : '';
      return (dst.service !== undefined && (dst.service === host || dst.service.startsWith(`${host}.`))) || cluster.includes(`|${host}.`);
    }
    return d !== undefined && dst.workload === d;
  });
}
