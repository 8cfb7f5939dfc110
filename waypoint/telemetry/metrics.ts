// The waypoint's Prometheus metrics with Istio's standard names and labels (reporter="waypoint"),
// so Istio dashboards and Kiali read them unchanged, plus a few of the waypoint's own.
import { Counter, Registry } from 'prom-client';
import {
  endpointLabels,
  NO_ENDPOINT,
  parseClusterName,
  peerLabels,
  requestProtocol,
  serviceLabels,
  stripPort,
  type EndpointLabels,
  type PeerLabels,
} from './labels';
import { RequestSeriesMetrics, type RequestSeries } from './request-series';

import { type EndpointWorkload, formatEndpointWorkload, RESPONSE_LABELS, WAYPOINT_PEER_LABELS } from '../../common/contracts/telemetry';

// An endpoint's workload metadata as a series key part, formatted once per endpoint object (they live as long as their cluster config).
const workloadKeys = new WeakMap<EndpointWorkload, string>();
function workloadKey(w: EndpointWorkload | undefined): string {
  if (w === undefined) return '';
  let k = workloadKeys.get(w);
  if (k === undefined) workloadKeys.set(w, (k = formatEndpointWorkload(w)));
  return k;
}

const PEER_LABELS = WAYPOINT_PEER_LABELS;

/** Istio's standard labels of istio_requests_total and the request/response size and duration histograms. */
export const REQUEST_LABELS = [...PEER_LABELS, ...RESPONSE_LABELS];

export type RequestLabels = Record<(typeof REQUEST_LABELS)[number], string>;

/** Istio's standard labels of the istio_tcp_* metrics. */
export const TCP_LABELS = PEER_LABELS;

export type TcpLabels = Record<(typeof TCP_LABELS)[number], string>;

/** The downstream side of a connection, for the labels. */
export interface TcpPeer {
  /** The HBONE peer's SPIFFE ID; undefined for plaintext. */
  readonly principal: string | undefined;
  /** The W3C baggage of the HBONE CONNECT (the source workload, as the node proxy describes it). */
  readonly baggage?: string;
}

/** What the request path knows of one finished request. */
export interface RequestFacts {
  readonly peer: TcpPeer;
  /** The route's cluster ('' when none was chosen). */
  readonly cluster: string;
  /** The request's Host / :authority. */
  readonly authority: string;
  /** The chosen endpoint's `nodemesh.identity` (undefined: none chosen, or not a mesh endpoint). */
  readonly endpointIdentity: string | undefined;
  /** The chosen endpoint's workload, from EDS metadata (undefined: none chosen, or EDS did not say). */
  readonly endpointWorkload?: EndpointWorkload;
  readonly contentType: string | undefined;
  readonly status: number;
  readonly grpcStatus: string;
  readonly flags: readonly string[];
}

interface PeerEntry {
  readonly id: string;
  readonly labels: PeerLabels;
  /** The last few series requests from these sources went to (without flags), tried before building a key. */
  recent?: RecentSeries[];
  recentNext?: number;
}

/** What decides a request's series besides its source, and that series. */
interface RecentSeries {
  readonly cluster: string;
  readonly authority: string;
  readonly identity: string | undefined;
  readonly workload: EndpointWorkload | undefined;
  readonly contentType: string | undefined;
  readonly status: number;
  readonly grpcStatus: string;
  readonly generation: number;
  readonly series: RequestSeries;
}

const RECENT_SERIES = 4;

export class WaypointMetrics {
  readonly registry = new Registry();
  /** istio_requests_total and the duration / request / response size histograms, per label set. */
  readonly requestSeries = new RequestSeriesMetrics(
    this.registry,
    [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000],
    [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000],
  );
  readonly rbacDenied = new Counter({
    name: 'nodemesh_waypoint_rbac_denied_total',
    help: 'Requests denied by the RBAC filter',
    labelNames: ['listener', 'policy'],
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: 'nodemesh_waypoint_rate_limited_total',
    help: 'Requests refused by local rate limiting',
    labelNames: ['stat_prefix'],
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: 'nodemesh_waypoint_upstream_retries_total',
    help: 'Upstream request retries',
    labelNames: ['cluster'],
    registers: [this.registry],
  });
  readonly resent = new Counter({
    name: 'nodemesh_waypoint_upstream_resent_total',
    help: 'Idempotent requests sent again on a new connection: a reused upstream HTTP/1.1 connection closed before any byte of the response',
    labelNames: ['cluster'],
    registers: [this.registry],
  });
  readonly ejections = new Counter({
    name: 'nodemesh_waypoint_outlier_ejections_total',
    help: 'Endpoints ejected by outlier detection',
    labelNames: ['cluster'],
    registers: [this.registry],
  });
  readonly overflows = new Counter({
    name: 'nodemesh_waypoint_upstream_overflow_total',
    help: 'Requests refused by circuit breakers',
    labelNames: ['cluster', 'breaker'],
    registers: [this.registry],
  });
  readonly tcpOpenedTotal = new Counter({
    name: 'istio_tcp_connections_opened_total',
    help: 'TCP connections opened by the waypoint (tcp_proxy listeners)',
    labelNames: TCP_LABELS,
    registers: [this.registry],
  });
  readonly tcpClosedTotal = new Counter({
    name: 'istio_tcp_connections_closed_total',
    help: 'TCP connections closed by the waypoint (tcp_proxy listeners)',
    labelNames: TCP_LABELS,
    registers: [this.registry],
  });
  readonly tcpSent = new Counter({
    name: 'istio_tcp_sent_bytes_total',
    help: 'Bytes sent to the upstream on tcp_proxy connections',
    labelNames: TCP_LABELS,
    registers: [this.registry],
  });
  readonly tcpReceived = new Counter({
    name: 'istio_tcp_received_bytes_total',
    help: 'Bytes received from the upstream on tcp_proxy connections',
    labelNames: TCP_LABELS,
    registers: [this.registry],
  });
  readonly xdsUpdates = new Counter({
    name: 'nodemesh_waypoint_xds_updates_total',
    help: 'xDS responses by type and outcome (ack, nack)',
    labelNames: ['type', 'outcome'],
    registers: [this.registry],
  });

  // Source labels per downstream connection (parsed once, not per request) and endpoint labels
  // per identity; both bounded by what is alive or configured.
  private readonly peers = new WeakMap<TcpPeer, PeerEntry>();
  /** Source label sets (by their values), each with a short id for series keys. */
  private readonly peerSets = new Map<string, PeerEntry>();
  private nextPeerId = 0;
  private readonly endpoints = new Map<string, EndpointLabels>();
  /** Cluster name -> whether it names the Service (`outbound|port|subset|host`), so the authority does not matter. */
  private readonly namedClusters = new Map<string, boolean>();

  private peerEntry(p: TcpPeer): PeerEntry {
    let e = this.peers.get(p);
    if (!e) {
      // Keyed by the labels, not by what they came from: connections whose baggage differs but
      // says the same (or is ignored) share one series.
      const labels = peerLabels(p.principal, p.baggage);
      const key = Object.values(labels).join('\u0000');
      e = this.peerSets.get(key);
      if (!e) {
        // Ids are never reused (a reused id would give two series the same labels); past the bound
        // the key itself is the id.
        if (this.peerSets.size >= 4096) e = { id: `~${key}`, labels };
        else this.peerSets.set(key, (e = { id: (this.nextPeerId++).toString(36), labels }));
      }
      this.peers.set(p, e);
    }
    return e;
  }

  /** The source labels of a connection (cached for its lifetime). */
  peer(p: TcpPeer): PeerLabels {
    return this.peerEntry(p).labels;
  }

  /**
   * Count one finished request in Istio's four request metrics. The label set is looked up by a
   * short key (connection's source, cluster, endpoint, protocol, status, flags) and built only
   * the first time.
   */
  recordRequest(r: RequestFacts, durationMs: number, requestBytes: number, responseBytes: number): string {
    const peer = this.peerEntry(r.peer);
    // Most requests repeat one of the last few series of their sources: compared field by field
    // (no key string to build and hash per request). Requests with flags take the long way.
    const noFlags = r.flags.length === 0;
    const gen = this.requestSeries.generation;
    if (noFlags && peer.recent) {
      for (const c of peer.recent) {
        if (
          c.status === r.status &&
          c.cluster === r.cluster &&
          c.identity === r.endpointIdentity &&
          c.workload === r.endpointWorkload &&
          c.grpcStatus === r.grpcStatus &&
          c.contentType === r.contentType &&
          c.authority === r.authority &&
          c.generation === gen
        ) {
          this.requestSeries.record(c.series, durationMs, requestBytes, responseBytes);
          return '-';
        }
      }
    }
    let named = this.namedClusters.get(r.cluster);
    if (named === undefined) {
      if (this.namedClusters.size >= 4096) this.namedClusters.clear();
      this.namedClusters.set(r.cluster, (named = parseClusterName(r.cluster) !== undefined));
    }
    const service = named ? r.cluster : `${r.cluster}\u0001${stripPort(r.authority)}`;
    const protocol = r.contentType === undefined || r.contentType.length < 16 ? 'http' : requestProtocol(r.contentType);
    const flags = r.flags.length ? r.flags.join(',') : '-';
    const key = `${peer.id}\u0000${service}\u0000${r.endpointIdentity ?? ''}\u0000${workloadKey(r.endpointWorkload)}\u0000${protocol}\u0000${r.status}\u0000${r.grpcStatus}\u0000${flags}`;
    const s = this.requestSeries.seriesFor(key, () => this.requestLabels(r));
    this.requestSeries.record(s, durationMs, requestBytes, responseBytes);
    if (noFlags) {
      const entry: RecentSeries = {
        cluster: r.cluster,
        authority: r.authority,
        identity: r.endpointIdentity,
        workload: r.endpointWorkload,
        contentType: r.contentType,
        status: r.status,
        grpcStatus: r.grpcStatus,
        generation: gen,
        series: s,
      };
      const recent = (peer.recent ??= []);
      const i = peer.recentNext ?? 0;
      recent[i] = entry;
      peer.recentNext = (i + 1) % RECENT_SERIES;
    }
    return flags;
  }

  /** The destination labels of an endpoint by its `nodemesh.identity` and its workload metadata (neither: not a mesh endpoint). */
  endpoint(identity: string | undefined, workload?: EndpointWorkload): EndpointLabels {
    if (identity === undefined && workload === undefined) return NO_ENDPOINT;
    const key = `${identity ?? ''}\u0000${workloadKey(workload)}`;
    let l = this.endpoints.get(key);
    if (!l) {
      if (this.endpoints.size >= 4096) this.endpoints.clear();
      this.endpoints.set(key, (l = endpointLabels(identity, workload)));
    }
    return l;
  }

  /** Istio's labels of one finished request. */
  requestLabels(r: RequestFacts): RequestLabels {
    return {
      reporter: 'waypoint',
      ...this.peer(r.peer),
      ...serviceLabels(r.cluster, r.authority),
      ...this.endpoint(r.endpointIdentity, r.endpointWorkload),
      request_protocol: requestProtocol(r.contentType),
      response_code: String(r.status),
      grpc_response_status: r.grpcStatus,
      response_flags: r.flags.length ? r.flags.join(',') : '-',
    };
  }

  private tcpLabels(peer: TcpPeer, cluster: string, identity: string | undefined, workload: EndpointWorkload | undefined): TcpLabels {
    return {
      reporter: 'waypoint',
      ...this.peer(peer),
      ...serviceLabels(cluster, ''),
      ...this.endpoint(identity, workload),
      request_protocol: 'tcp',
      response_flags: '-',
    };
  }

  /** A tcp_proxy connection to `cluster` opened (`identity`: the chosen endpoint's, when a mesh one). */
  tcpOpened(peer: TcpPeer, cluster: string, identity?: string, workload?: EndpointWorkload): void {
    this.tcpOpenedTotal.inc(this.tcpLabels(peer, cluster, identity, workload));
  }

  tcpClosed(peer: TcpPeer, cluster: string, sent: number, received: number, identity?: string, workload?: EndpointWorkload): void {
    const l = this.tcpLabels(peer, cluster, identity, workload);
    this.tcpClosedTotal.inc(l);
    if (sent > 0) this.tcpSent.inc(l, sent);
    if (received > 0) this.tcpReceived.inc(l, received);
  }
}
