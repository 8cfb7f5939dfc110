// The waypoint's Prometheus metrics with Istio's standard names and labels (reporter="waypoint"),
// so Istio dashboards and Kiali read them unchanged, plus a few of the waypoint's own.
import { Counter, Histogram, Registry } from 'prom-client';

export const REQUEST_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'destination_service',
  'destination_workload',
  'destination_principal',
  'request_protocol',
  'response_code',
  'grpc_response_status',
  'response_flags',
  'connection_security_policy',
] as const;

export type RequestLabels = Record<(typeof REQUEST_LABELS)[number], string>;

export const TCP_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'destination_service',
  'destination_workload',
  'destination_principal',
  'request_protocol',
  'response_flags',
  'connection_security_policy',
] as const;

export type TcpLabels = Record<(typeof TCP_LABELS)[number], string>;

/** The peer of a tcp_proxy connection, for the labels. */
export interface TcpPeer {
  readonly principal: string | undefined;
}

/** ns and sa of a SPIFFE ID (spiffe://td/ns/NS/sa/SA). */
export function parseSpiffe(id: string | undefined): { ns: string; sa: string } | undefined {
  const m = id ? /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(id) : null;
  return m ? { ns: m[1]!, sa: m[2]! } : undefined;
}

export class WaypointMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'istio_requests_total', help: 'Requests handled by the waypoint', labelNames: REQUEST_LABELS, registers: [this.registry] });
  readonly duration = new Histogram({
    name: 'istio_request_duration_milliseconds',
    help: 'Request duration at the waypoint, ms',
    labelNames: REQUEST_LABELS,
    buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000],
    registers: [this.registry],
  });
  readonly requestBytes = new Histogram({
    name: 'istio_request_bytes',
    help: 'Request sizes (headers and body), bytes',
    labelNames: REQUEST_LABELS,
    buckets: [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000],
    registers: [this.registry],
  });
  readonly responseBytes = new Histogram({
    name: 'istio_response_bytes',
    help: 'Response sizes (headers and body), bytes',
    labelNames: REQUEST_LABELS,
    buckets: [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000],
    registers: [this.registry],
  });
  readonly rbacDenied = new Counter({ name: 'nodemesh_waypoint_rbac_denied_total', help: 'Requests denied by the RBAC filter', labelNames: ['listener', 'policy'], registers: [this.registry] });
  readonly rateLimited = new Counter({ name: 'nodemesh_waypoint_rate_limited_total', help: 'Requests refused by local rate limiting', labelNames: ['stat_prefix'], registers: [this.registry] });
  readonly retries = new Counter({ name: 'nodemesh_waypoint_upstream_retries_total', help: 'Upstream request retries', labelNames: ['cluster'], registers: [this.registry] });
  readonly ejections = new Counter({ name: 'nodemesh_waypoint_outlier_ejections_total', help: 'Endpoints ejected by outlier detection', labelNames: ['cluster'], registers: [this.registry] });
  readonly overflows = new Counter({ name: 'nodemesh_waypoint_upstream_overflow_total', help: 'Requests refused by circuit breakers', labelNames: ['cluster', 'breaker'], registers: [this.registry] });
  readonly tcpOpenedTotal = new Counter({ name: 'istio_tcp_connections_opened_total', help: 'TCP connections opened by the waypoint (tcp_proxy listeners)', labelNames: TCP_LABELS, registers: [this.registry] });
  readonly tcpClosedTotal = new Counter({ name: 'istio_tcp_connections_closed_total', help: 'TCP connections closed by the waypoint (tcp_proxy listeners)', labelNames: TCP_LABELS, registers: [this.registry] });
  readonly tcpSent = new Counter({ name: 'istio_tcp_sent_bytes_total', help: 'Bytes sent to the upstream on tcp_proxy connections', labelNames: TCP_LABELS, registers: [this.registry] });
  readonly tcpReceived = new Counter({ name: 'istio_tcp_received_bytes_total', help: 'Bytes received from the upstream on tcp_proxy connections', labelNames: TCP_LABELS, registers: [this.registry] });
  readonly xdsUpdates = new Counter({ name: 'nodemesh_waypoint_xds_updates_total', help: 'xDS responses by type and outcome (ack, nack)', labelNames: ['type', 'outcome'], registers: [this.registry] });

  private tcpLabels(peer: TcpPeer, cluster: string): TcpLabels {
    const src = parseSpiffe(peer.principal);
    return {
      reporter: 'waypoint',
      source_workload: src?.sa ?? 'unknown',
      source_workload_namespace: src?.ns ?? 'unknown',
      source_principal: peer.principal ?? 'unknown',
      destination_service: cluster || 'unknown',
      destination_workload: cluster || 'unknown',
      destination_principal: 'unknown',
      request_protocol: 'tcp',
      response_flags: '-',
      connection_security_policy: peer.principal ? 'mutual_tls' : 'none',
    };
  }

  tcpOpened(peer: TcpPeer, cluster: string): void {
    this.tcpOpenedTotal.inc(this.tcpLabels(peer, cluster));
  }

  tcpClosed(peer: TcpPeer, cluster: string, sent: number, received: number): void {
    const l = this.tcpLabels(peer, cluster);
    this.tcpClosedTotal.inc(l);
    if (sent > 0) this.tcpSent.inc(l, sent);
    if (received > 0) this.tcpReceived.inc(l, received);
  }
}
