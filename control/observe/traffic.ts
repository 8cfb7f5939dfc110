// What the proxies' Istio metrics say about who talks to whom, folded into edges of the mesh graph
// (pure). A graph node is a workload (`wl:<ns>/<name>`), a Service (`svc:<ns>/<name>`, from its hostname), or an address
// the mesh does not know (`addr:<ip>`; `unknown` when not even that). Each proxy reports what it
// saw from its side: a node proxy as `source` (its client's connection) and/or as `destination`
// (its server's), a waypoint as `waypoint` (requests). An edge keeps each reporter's totals apart
// and reads them in one place (edgeView), so a connection reported by both ends counts once.
import type { Sample } from './prometheus';

/** The metrics the observer reads from a proxy's /metrics. */
export const OBSERVED_METRICS: ReadonlySet<string> = new Set([
  'istio_tcp_connections_opened_total',
  'istio_tcp_connections_closed_total',
  'istio_tcp_sent_bytes_total',
  'istio_tcp_received_bytes_total',
  'istio_requests_total',
]);

export interface Counters {
  connections: number;
  /** Connections closed with response_flags DENY (policy refused them). */
  denied: number;
  /** Connections closed with another flag than "-" and DENY (connect failures, resets). */
  failed: number;
  requests: number;
  /** Requests answered 5xx or not at all (status 0). */
  errors: number;
  /** Requests answered 403 (at a waypoint: RBAC). */
  forbidden: number;
  /** Bytes from the client (request direction). */
  bytesIn: number;
  /** Bytes back to the client (response direction). */
  bytesOut: number;
  /** Connections or requests carried over mutual TLS. */
  mtls: number;
  /** … and in plaintext. */
  plaintext: number;
}

export const zeroCounters = (): Counters => ({
  connections: 0,
  denied: 0,
  failed: 0,
  requests: 0,
  errors: 0,
  forbidden: 0,
  bytesIn: 0,
  bytesOut: 0,
  mtls: 0,
  plaintext: 0,
});

export type Reporter = 'source' | 'destination' | 'waypoint';

/** One edge's totals per reporter, as summed over every proxy that reported it. */
export interface EdgeTotals {
  readonly id: string;
  readonly source: string;
  readonly destination: string;
  readonly sourcePrincipal: string;
  readonly destinationPrincipal: string;
  /** Waypoints (ns/name) that reported this edge. */
  readonly waypoints: Set<string>;
  readonly byReporter: Map<Reporter, Counters>;
}

const UNKNOWN = 'unknown';
const known = (v: string | undefined): v is string => v !== undefined && v !== '' && v !== UNKNOWN;

/** The graph node of a metric's source. */
export function sourceNode(l: Readonly<Record<string, string>>): string {
  if (known(l.source_workload) && known(l.source_workload_namespace)) return `wl:${l.source_workload_namespace}/${l.source_workload}`;
  return UNKNOWN;
}

/** The graph node of a metric's destination: the Service when one was addressed, else the workload, else the address. */
export function destinationNode(l: Readonly<Record<string, string>>): string {
  if (known(l.destination_service_name) && known(l.destination_service)) {
    const m = /^([^.]+)\.([^.]+)\.svc(\.|$)/.exec(l.destination_service);
    return m ? `svc:${m[2]}/${m[1]}` : `svc:${l.destination_service}`;
  }
  if (known(l.destination_workload) && known(l.destination_workload_namespace)) return `wl:${l.destination_workload_namespace}/${l.destination_workload}`;
  if (known(l.destination_service)) return `addr:${l.destination_service}`;
  return UNKNOWN;
}

export const edgeId = (source: string, destination: string): string => `${source}->${destination}`;

/**
 * Adds one proxy's samples to `edges`. `waypoint` names the reporting waypoint (ns/name) when the
 * proxy is one.
 */
export function addSamples(edges: Map<string, EdgeTotals>, samples: readonly Sample[], waypoint?: string): void {
  for (const s of samples) {
    const l = s.labels;
    const reporter: Reporter | undefined = l.reporter === 'source' || l.reporter === 'destination' || l.reporter === 'waypoint' ? l.reporter : undefined;
    if (!reporter || !Number.isFinite(s.value) || s.value <= 0) continue;
    const source = sourceNode(l);
    const destination = destinationNode(l);
    const id = edgeId(source, destination);
    let e = edges.get(id);
    if (!e) {
      e = {
        id,
        source,
        destination,
        sourcePrincipal: l.source_principal ?? UNKNOWN,
        destinationPrincipal: l.destination_principal ?? UNKNOWN,
        waypoints: new Set(),
        byReporter: new Map(),
      };
      edges.set(id, e);
    }
    if (waypoint) e.waypoints.add(waypoint);
    let c = e.byReporter.get(reporter);
    if (!c) {
      c = zeroCounters();
      e.byReporter.set(reporter, c);
    }
    const secure = l.connection_security_policy === 'mutual_tls';
    switch (s.name) {
      case 'istio_tcp_connections_opened_total':
        c.connections += s.value;
        if (secure) c.mtls += s.value;
        else c.plaintext += s.value;
        break;
      case 'istio_tcp_connections_closed_total':
        if (l.response_flags === 'DENY') c.denied += s.value;
        else if (known(l.response_flags) && l.response_flags !== '-') c.failed += s.value;
        break;
      case 'istio_tcp_received_bytes_total':
        c.bytesIn += s.value;
        break;
      case 'istio_tcp_sent_bytes_total':
        c.bytesOut += s.value;
        break;
      case 'istio_requests_total': {
        c.requests += s.value;
        const code = Number(l.response_code);
        if (!(code > 0) || code >= 500) c.errors += s.value;
        if (code === 403) c.forbidden += s.value;
        if (secure) c.mtls += s.value;
        else c.plaintext += s.value;
        break;
      }
    }
  }
}

/** An edge as the page shows it: one set of numbers, rates from the last two polls. */
export interface EdgeView {
  readonly id: string;
  readonly source: string;
  readonly destination: string;
  readonly sourcePrincipal: string;
  readonly destinationPrincipal: string;
  readonly waypoints: readonly string[];
  /** Who the numbers come from: the waypoint for requests, else the destination's node proxy, else the source's. */
  readonly reporter: Reporter;
  readonly connections: number;
  readonly requests: number;
  /** Refused by policy: DENY closes at a node proxy, 403 answers at a waypoint. */
  readonly denied: number;
  /** Failed (not by policy): connect failures and 5xx. */
  readonly errors: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Share of connections/requests over mutual TLS (0..1). */
  readonly mtlsRatio: number;
  /** Per second over the last poll interval (0 before the second poll). */
  readonly rate: number;
  readonly errorRate: number;
  readonly deniedRate: number;
  readonly bytesRate: number;
}

/** Reads an edge's totals in one place: the reporter that saw the most of it. */
export function edgeTotals(e: EdgeTotals): { reporter: Reporter; counters: Counters } {
  const w = e.byReporter.get('waypoint');
  if (w && w.requests > 0) return { reporter: 'waypoint', counters: w };
  const d = e.byReporter.get('destination');
  const s = e.byReporter.get('source');
  if (d && (!s || d.connections >= s.connections)) return { reporter: 'destination', counters: d };
  if (s) return { reporter: 'source', counters: s };
  return { reporter: 'destination', counters: zeroCounters() };
}

/** The edges with rates against the previous poll's views (`previous`, `seconds` apart). */
export function edgeViews(edges: ReadonlyMap<string, EdgeTotals>, previous: ReadonlyMap<string, EdgeView>, seconds: number): Map<string, EdgeView> {
  const out = new Map<string, EdgeView>();
  for (const e of edges.values()) {
    const { reporter, counters: c } = edgeTotals(e);
    const denied = c.denied + c.forbidden;
    const errors = c.failed + c.errors;
    const volume = reporter === 'waypoint' ? c.requests : c.connections;
    const p = previous.get(e.id);
    const per = (now: number, before: number | undefined): number => (p && seconds > 0 ? Math.max(0, now - (before ?? 0)) / seconds : 0);
    out.set(e.id, {
      id: e.id,
      source: e.source,
      destination: e.destination,
      sourcePrincipal: e.sourcePrincipal,
      destinationPrincipal: e.destinationPrincipal,
      waypoints: [...e.waypoints].sort(),
      reporter,
      connections: c.connections,
      requests: c.requests,
      denied,
      errors,
      bytesIn: c.bytesIn,
      bytesOut: c.bytesOut,
      mtlsRatio: c.mtls + c.plaintext > 0 ? c.mtls / (c.mtls + c.plaintext) : 0,
      rate: per(volume, p ? (p.reporter === 'waypoint' ? p.requests : p.connections) : undefined),
      errorRate: per(errors, p?.errors),
      deniedRate: per(denied, p?.denied),
      bytesRate: per(c.bytesIn + c.bytesOut, p ? p.bytesIn + p.bytesOut : undefined),
    });
  }
  return out;
}
