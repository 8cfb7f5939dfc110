// Istio's standard metric labels for the waypoint (reporter="waypoint"), pure: who the source is
// (the HBONE peer's SPIFFE ID and the W3C baggage its node proxy put on the CONNECT, as ztunnel
// does), which Service the request went to (the route's cluster, `outbound|port|subset|host`),
// which endpoint served it (its `nodemesh.identity`), and how (protocol, status, flags, mTLS).
// Values nobody told the waypoint are "unknown", as Istio reports them — never a guess.

import { type EndpointWorkload, UNKNOWN_LABEL_VALUE } from '../../common/contracts/telemetry';
import { tryParseSpiffeId } from '../../common/identity/spiffe';

export const UNKNOWN = UNKNOWN_LABEL_VALUE;

/** Labels of the source side, fixed for one downstream connection. */
export interface PeerLabels {
  readonly source_workload: string;
  readonly source_workload_namespace: string;
  readonly source_principal: string;
  readonly source_app: string;
  readonly source_version: string;
  readonly source_canonical_service: string;
  readonly source_canonical_revision: string;
  readonly source_cluster: string;
  readonly connection_security_policy: string;
}

/** Labels of the Service the request was routed to. */
export interface ServiceLabels {
  readonly destination_service: string;
  readonly destination_service_name: string;
  readonly destination_service_namespace: string;
}

/** Labels of the endpoint that served it. */
export interface EndpointLabels {
  readonly destination_workload: string;
  readonly destination_workload_namespace: string;
  readonly destination_principal: string;
  readonly destination_app: string;
  readonly destination_version: string;
  readonly destination_canonical_service: string;
  readonly destination_canonical_revision: string;
  readonly destination_cluster: string;
}

/** ns and sa of a workload SPIFFE ID (spiffe://td/ns/NS/sa/SA); undefined for anything else. */
function parseSpiffe(id: string | undefined): { ns: string; sa: string } | undefined {
  const parsed = id === undefined ? undefined : tryParseSpiffeId(id);
  return parsed && { ns: parsed.namespace, sa: parsed.serviceAccount };
}

/** W3C baggage (`k=v,k2=v2;prop`) as a map of decoded values; malformed members are skipped. */
export function parseBaggage(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const member of header.split(',')) {
    const kv = member.split(';')[0]!;
    const eq = kv.indexOf('=');
    if (eq <= 0) continue;
    const k = kv.slice(0, eq).trim();
    let v = kv.slice(eq + 1).trim();
    try {
      v = decodeURIComponent(v);
    } catch {
      continue;
    }
    if (k && v && !out.has(k)) out.set(k, v);
  }
  return out;
}

// The OpenTelemetry k8s.<kind>.name keys a workload's owner can carry in baggage (ztunnel sends
// the one of its workload type); k8s.namespace/cluster/node names are not the workload's name.
const WORKLOAD_NAME_KEYS = [
  'k8s.deployment.name',
  'k8s.statefulset.name',
  'k8s.daemonset.name',
  'k8s.replicaset.name',
  'k8s.job.name',
  'k8s.cronjob.name',
  'k8s.pod.name',
  'k8s.workload.name',
];

/**
 * The source labels of a downstream connection. `principal` is the HBONE peer's verified SPIFFE
 * ID (undefined for plaintext); `baggage` the CONNECT's baggage header. The principal is the
 * authority on the namespace: baggage naming another namespace is ignored whole (the peer's
 * node proxy wrote it, but a workload's namespace is in its certificate).
 */
export function peerLabels(principal: string | undefined, baggage: string | undefined): PeerLabels {
  const id = parseSpiffe(principal);
  let b = parseBaggage(baggage);
  const bns = b.get('k8s.namespace.name');
  if (id && bns !== undefined && bns !== id.ns) b = new Map();
  let workload: string | undefined;
  for (const k of WORKLOAD_NAME_KEYS) {
    workload = b.get(k);
    if (workload) break;
  }
  const canonical = b.get('service.name');
  const revision = b.get('service.version');
  return {
    source_workload: workload ?? UNKNOWN,
    source_workload_namespace: id?.ns ?? bns ?? UNKNOWN,
    source_principal: principal ?? UNKNOWN,
    source_app: b.get('app.name') ?? canonical ?? UNKNOWN,
    source_version: b.get('app.version') ?? revision ?? UNKNOWN,
    source_canonical_service: canonical ?? workload ?? UNKNOWN,
    source_canonical_revision: revision ?? (workload ? 'latest' : UNKNOWN),
    source_cluster: b.get('k8s.cluster.name') ?? UNKNOWN,
    connection_security_policy: principal ? 'mutual_tls' : 'none',
  };
}

/** host and port of an Istio cluster name `outbound|<port>|<subset>|<host>` (also inbound). */
export function parseClusterName(cluster: string): { host: string; port: number; subset: string } | undefined {
  const p = cluster.split('|');
  if (p.length !== 4 || (p[0] !== 'outbound' && p[0] !== 'inbound') || !p[3]) return undefined;
  const port = Number(p[1]);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
  return { host: p[3], port, subset: p[2]! };
}

/** name and namespace of a Service host `name.namespace.svc[.suffix]`. */
export function serviceOfHost(host: string): { name: string; namespace: string } | undefined {
  const m = /^([^.]+)\.([^.]+)\.svc(\.|$)/.exec(host);
  return m ? { name: m[1]!, namespace: m[2]! } : undefined;
}

/**
 * The Service labels: the host in the route's cluster name (the backend Service the route chose,
 * as Istio reads it from the cluster's `istio.services` metadata); for a cluster without one,
 * the request's host without its port (Istio's fallback), with namespace unknown.
 */
export function serviceLabels(cluster: string, authority: string): ServiceLabels {
  const host = parseClusterName(cluster)?.host;
  if (host) {
    const svc = serviceOfHost(host);
    return { destination_service: host, destination_service_name: svc?.name ?? host, destination_service_namespace: svc?.namespace ?? UNKNOWN };
  }
  const h = stripPort(authority);
  return { destination_service: h || UNKNOWN, destination_service_name: h || UNKNOWN, destination_service_namespace: UNKNOWN };
}

/**
 * The endpoint labels from what EDS says of the chosen endpoint: its identity
 * (`filter_metadata.nodemesh.identity`) gives the principal and the workload's namespace; Istio's
 * workload metadata (`filter_metadata.istio.workload`) names the workload, its canonical service
 * and revision (also app and version, as Istio's stats filter reports them) and its cluster.
 * What EDS does not say is "unknown" rather than a guess.
 */
export function endpointLabels(identity: string | undefined, workload?: EndpointWorkload): EndpointLabels {
  const id = parseSpiffe(identity);
  return {
    destination_workload: workload?.name || UNKNOWN,
    destination_workload_namespace: workload?.namespace || id?.ns || UNKNOWN,
    destination_principal: identity ?? UNKNOWN,
    destination_app: workload?.canonicalService || UNKNOWN,
    destination_version: workload?.canonicalRevision || UNKNOWN,
    destination_canonical_service: workload?.canonicalService || UNKNOWN,
    destination_canonical_revision: workload?.canonicalRevision || UNKNOWN,
    destination_cluster: workload?.cluster || UNKNOWN,
  };
}

export const NO_ENDPOINT: EndpointLabels = endpointLabels(undefined);

/** Istio's request_protocol: "grpc" for gRPC (content-type application/grpc*), else "http" (HTTP/1.1 and HTTP/2). */
export function requestProtocol(contentType: string | undefined): 'grpc' | 'http' {
  return contentType !== undefined && /^application\/grpc([+;]|$)/i.test(contentType.trim()) ? 'grpc' : 'http';
}

export function stripPort(authority: string): string {
  const i = authority.lastIndexOf(':');
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    return end > 0 ? authority.slice(1, end) : authority;
  }
  return i > 0 && /^\d+$/.test(authority.slice(i + 1)) ? authority.slice(0, i) : authority;
}
