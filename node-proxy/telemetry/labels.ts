// Istio's standard TCP metric labels for one connection, so existing Grafana dashboards and Kiali
// read nodemesh's node proxy as they read ztunnel. Pure: a connection record in, a label set out.
// Unknown values are "unknown", as Istio writes them.
import type { Service, Workload } from '../../api/gen/nodemesh/workload/v1/workload';

import { DEFAULT_CLUSTER, NODE_PROXY_TCP_LABELS, UNKNOWN_LABEL_VALUE as UNKNOWN } from '../../common/contracts/telemetry';

/** The labels of the node proxy's istio_tcp_* metrics (common/contracts/telemetry.ts). */
export const TCP_LABEL_NAMES = NODE_PROXY_TCP_LABELS;

export type TcpLabelName = (typeof TCP_LABEL_NAMES)[number];
export type TcpLabels = Record<TcpLabelName, string>;

export { DEFAULT_CLUSTER };

/** How a connection ended, as the response_flags label says it (ztunnel's vocabulary). */
export type ResponseFlag = '-' | 'DENY' | 'CONNECT';

export interface ConnectionPeer {
  /** The workload, when it is known to the mesh. */
  readonly workload?: Pick<Workload, 'name' | 'namespace' | 'canonicalName' | 'canonicalRevision'>;
  /** Its SPIFFE ID: verified from the certificate (inbound) or the one presented (outbound). */
  readonly identity?: string;
  readonly address: string;
  readonly port: number;
}

/** One connection as the node proxy saw it. */
export interface ConnectionRecord {
  /** source: this proxy sent the connection for its local client; destination: it received it for its local server. */
  readonly reporter: 'source' | 'destination';
  readonly source: ConnectionPeer;
  readonly destination: ConnectionPeer;
  /** The Service the client addressed, if it addressed one. */
  readonly service?: Pick<Service, 'name' | 'namespace' | 'hostname'>;
  /**
   * Both ends authenticated by the mesh: carried over the mutual TLS tunnel (HBONE), or on the
   * same-node path, where the node proxy holds both identities (connection_security_policy
   * mutual_tls either way).
   */
  readonly mtls: boolean;
  /** The same-node path: no tunnel and no TLS on the wire (the access log's protocol says so). */
  readonly sameNode?: boolean;
  /**
   * Inbound HBONE: the tunnel's TCP peer (shared by every stream of one pooled connection), when
   * `source` names the app's own connection from the `forwarded` header instead.
   */
  readonly tunnelPeer?: { readonly address: string; readonly port: number };
  readonly sourceCluster?: string;
  readonly destinationCluster?: string;
}

export function tcpLabels(record: ConnectionRecord, responseFlags: ResponseFlag = '-'): TcpLabels {
  const src = record.source;
  const dst = record.destination;
  return {
    reporter: record.reporter,
    source_workload: src.workload?.name || UNKNOWN,
    source_workload_namespace: src.workload?.namespace || UNKNOWN,
    source_principal: src.identity || UNKNOWN,
    // As ztunnel: app/version and canonical service/revision both from the workload's canonical labels.
    source_app: src.workload?.canonicalName || UNKNOWN,
    source_version: src.workload?.canonicalRevision || UNKNOWN,
    source_canonical_service: src.workload?.canonicalName || UNKNOWN,
    source_canonical_revision: src.workload?.canonicalRevision || UNKNOWN,
    source_cluster: record.sourceCluster ?? (src.workload ? DEFAULT_CLUSTER : UNKNOWN),
    destination_workload: dst.workload?.name || UNKNOWN,
    destination_workload_namespace: dst.workload?.namespace || UNKNOWN,
    destination_principal: dst.identity || UNKNOWN,
    destination_app: dst.workload?.canonicalName || UNKNOWN,
    destination_version: dst.workload?.canonicalRevision || UNKNOWN,
    destination_canonical_service: dst.workload?.canonicalName || UNKNOWN,
    destination_canonical_revision: dst.workload?.canonicalRevision || UNKNOWN,
    // Istio puts the host name here; with no Service, the address the client dialled.
    destination_service: record.service?.hostname || dst.address || UNKNOWN,
    destination_service_name: record.service?.name || UNKNOWN,
    destination_service_namespace: record.service?.namespace || UNKNOWN,
    destination_cluster: record.destinationCluster ?? (dst.workload ? DEFAULT_CLUSTER : UNKNOWN),
    request_protocol: 'tcp',
    response_flags: responseFlags,
    connection_security_policy: record.mtls ? 'mutual_tls' : 'none',
  };
}
