// Istio's standard metric labels, so Istio's Grafana dashboards and Kiali read the node proxy (as
// they read ztunnel) and the waypoint (as they read a waypoint Envoy) unchanged. The label sets
// are written only here; each reporter fills them in (node-proxy/telemetry/labels.ts,
// waypoint/telemetry/labels.ts). Values nobody told a reporter are "unknown", as Istio writes them.

/** What Istio reports for a value it does not know. */
export const UNKNOWN_LABEL_VALUE = 'unknown';

/** Istio's cluster name when none is configured. */
export const DEFAULT_CLUSTER = 'Kubernetes';

/** Istio's standard labels of both ends of a connection or request (istio_tcp_* and istio_requests_*). */
export const ISTIO_PEER_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_canonical_service',
  'source_canonical_revision',
  'source_cluster',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_cluster',
  'request_protocol',
  'response_flags',
  'connection_security_policy',
] as const;

type IstioPeerLabel = (typeof ISTIO_PEER_LABELS)[number];
type CanonicalLabel = 'source_canonical_service' | 'source_canonical_revision' | 'destination_canonical_service' | 'destination_canonical_revision';

/**
 * The waypoint's labels of istio_tcp_* (tcp_proxy listeners) and, with RESPONSE_LABELS, of
 * istio_requests_* and the request/response histograms: Istio's set without destination_cluster,
 * which EDS does not tell the waypoint.
 */
export const WAYPOINT_PEER_LABELS = ISTIO_PEER_LABELS.filter((l): l is Exclude<IstioPeerLabel, 'destination_cluster'> => l !== 'destination_cluster');

/** The labels requests add to the peer labels. */
export const RESPONSE_LABELS = ['response_code', 'grpc_response_status'] as const;

/** The node proxy's istio_tcp_* labels: Istio's set without the canonical service and revision labels. */
export const NODE_PROXY_TCP_LABELS = ISTIO_PEER_LABELS.filter((l): l is Exclude<IstioPeerLabel, CanonicalLabel> => !/_canonical_/.test(l));
