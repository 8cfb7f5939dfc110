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

/**
 * The labels both reporters put on istio_tcp_* and (with RESPONSE_LABELS) the waypoint's
 * istio_requests_* and request/response histograms: Istio's whole set, as Kiali reads it.
 */
export const NODE_PROXY_TCP_LABELS = ISTIO_PEER_LABELS;
export const WAYPOINT_PEER_LABELS = ISTIO_PEER_LABELS;

/** The labels requests add to the peer labels. */
export const RESPONSE_LABELS = ['response_code', 'grpc_response_status'] as const;

/** Istio's label keys naming a workload's canonical service and revision (they win over the app labels). */
export const CANONICAL_NAME_LABEL = 'service.istio.io/canonical-name';
export const CANONICAL_REVISION_LABEL = 'service.istio.io/canonical-revision';

/**
 * A workload's canonical service, as Istio derives it: its `service.istio.io/canonical-name`
 * label, else `app.kubernetes.io/name`, else `app`, else the workload's own name.
 */
export function canonicalService(labels: Readonly<Record<string, string>> | undefined, workloadName: string): string {
  return labels?.[CANONICAL_NAME_LABEL] || labels?.['app.kubernetes.io/name'] || labels?.['app'] || workloadName;
}

/**
 * A workload's canonical revision: `service.istio.io/canonical-revision`, else
 * `app.kubernetes.io/version`, else `version`, else "latest".
 */
export function canonicalRevision(labels: Readonly<Record<string, string>> | undefined): string {
  return labels?.[CANONICAL_REVISION_LABEL] || labels?.['app.kubernetes.io/version'] || labels?.['version'] || 'latest';
}

/**
 * Who serves an endpoint, in the form Istio's control plane writes it into EDS endpoint metadata
 * (`filter_metadata.istio.workload`, read by Envoy's Istio stats filter as by the waypoint):
 * `name;namespace;canonical service;canonical revision;cluster`.
 */
export interface EndpointWorkload {
  readonly name: string;
  readonly namespace: string;
  readonly canonicalService: string;
  readonly canonicalRevision: string;
  readonly cluster: string;
}

/** The filter_metadata key and field carrying EndpointWorkload. */
export const ENDPOINT_WORKLOAD_METADATA = { filter: 'istio', field: 'workload' } as const;

export function formatEndpointWorkload(w: EndpointWorkload): string {
  return [w.name, w.namespace, w.canonicalService, w.canonicalRevision, w.cluster].join(';');
}

/** The metadata value's parts; undefined when it is not five `;`-separated fields with a name and namespace. */
export function parseEndpointWorkload(value: unknown): EndpointWorkload | undefined {
  if (typeof value !== 'string') return undefined;
  const p = value.split(';');
  if (p.length !== 5 || !p[0] || !p[1]) return undefined;
  return { name: p[0], namespace: p[1], canonicalService: p[2]!, canonicalRevision: p[3]!, cluster: p[4]! };
}
