// Cluster and ClusterLoadAssignment -> what the upstream side needs: load-balancing policy,
// protocol (HTTP/1.1, or HTTP/2 when http2_protocol_options is set), circuit breakers (Envoy's
// defaults: 1024 connections/pending/requests, 3 retries), outlier detection, and the endpoints
// (healthy/unknown ones; degraded only when nothing else is left).
import { Cluster_DiscoveryType, Cluster_LbPolicy, type Cluster } from '../../api/gen/envoy/config/cluster/v3/cluster';
import { HealthStatus } from '../../api/gen/envoy/config/core/v3/health_check';
import type { ClusterLoadAssignment } from '../../api/gen/envoy/config/endpoint/v3/endpoint';
import { millis } from './duration';
import { ConfigError, within } from './errors';
import { HBONE_PORT } from '../../common/contracts/ports';
import { ENDPOINT_WORKLOAD_METADATA, type EndpointWorkload, parseEndpointWorkload } from '../../common/contracts/telemetry';

export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM';

export interface CircuitBreakerLimits {
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
  readonly maxRequests: number;
  readonly maxRetries: number;
}

export interface OutlierPolicy {
  readonly consecutive5xx: number;
  readonly consecutiveGatewayFailure: number;
  readonly enforcing5xx: number;
  readonly enforcingGatewayFailure: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
  readonly maxEjectionPercent: number;
  readonly intervalMs: number;
}

export interface CompiledCluster {
  readonly name: string;
  /** The EDS resource name (eds_cluster_config.service_name, or the cluster's name). */
  readonly edsName: string | undefined;
  readonly lb: LbPolicy;
  readonly http2: boolean;
  readonly connectTimeoutMs: number;
  readonly breakers: CircuitBreakerLimits;
  readonly outlier: OutlierPolicy | undefined;
  /** Endpoints given inline (STATIC clusters). */
  readonly staticEndpoints: readonly UpstreamEndpoint[] | undefined;
}

export interface UpstreamEndpoint {
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly health: 'healthy' | 'degraded';
  /** An Envoy internal listener (envoy_internal_address): served inside the waypoint, not dialled. */
  readonly internalListener?: string;
  /** The endpoint is a mesh workload: reach it through HBONE (its node proxy on :15008). */
  readonly hbone?: { readonly address: string; readonly port: number; readonly identity: string | undefined };
  /** Who serves it, from Istio's endpoint metadata (filter_metadata.istio.workload), for the destination labels. */
  readonly workload?: EndpointWorkload;
}

export const DEFAULT_BREAKERS: CircuitBreakerLimits = { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 };

export function compileCluster(c: Cluster): CompiledCluster {
  if (!c.name) throw new ConfigError('cluster has no name');
  const type = c.clusterDiscoveryType?.$case === 'type' ? c.clusterDiscoveryType.value : Cluster_DiscoveryType.STATIC;
  if (c.clusterDiscoveryType?.$case === 'clusterType') throw new ConfigError(`cluster type ${c.clusterDiscoveryType.value.name} is not supported`);
  let lb: LbPolicy;
  switch (c.lbPolicy) {
    case Cluster_LbPolicy.ROUND_ROBIN:
      lb = 'ROUND_ROBIN';
      break;
    case Cluster_LbPolicy.LEAST_REQUEST:
      lb = 'LEAST_REQUEST';
      break;
    case Cluster_LbPolicy.RANDOM:
      lb = 'RANDOM';
      break;
    default:
      throw new ConfigError(`lb_policy ${Cluster_LbPolicy[c.lbPolicy] ?? c.lbPolicy} is not supported (ROUND_ROBIN, LEAST_REQUEST, RANDOM)`);
  }
  const t = c.circuitBreakers?.thresholds.find((x) => x.priority === 0);
  const breakers: CircuitBreakerLimits = {
    maxConnections: t?.maxConnections ?? DEFAULT_BREAKERS.maxConnections,
    maxPendingRequests: t?.maxPendingRequests ?? DEFAULT_BREAKERS.maxPendingRequests,
    maxRequests: t?.maxRequests ?? DEFAULT_BREAKERS.maxRequests,
    maxRetries: t?.maxRetries ?? DEFAULT_BREAKERS.maxRetries,
  };
  const o = c.outlierDetection;
  let outlier: OutlierPolicy | undefined;
  if (o) {
    const base = millis(o.baseEjectionTime, 30_000);
    outlier = {
      consecutive5xx: o.consecutive5xx ?? 5,
      consecutiveGatewayFailure: o.consecutiveGatewayFailure ?? 5,
      enforcing5xx: (o.enforcingConsecutive5xx ?? 100) / 100,
      enforcingGatewayFailure: (o.enforcingConsecutiveGatewayFailure ?? 0) / 100,
      baseEjectionMs: base,
      maxEjectionMs: millis(o.maxEjectionTime, Math.max(300_000, base)),
      maxEjectionPercent: o.maxEjectionPercent ?? 10,
      intervalMs: millis(o.interval, 10_000),
    };
  }
  let edsName: string | undefined;
  let staticEndpoints: UpstreamEndpoint[] | undefined;
  if (type === Cluster_DiscoveryType.EDS) {
    edsName = c.edsClusterConfig?.serviceName || c.name;
  } else if (type === Cluster_DiscoveryType.STATIC) {
    staticEndpoints = c.loadAssignment ? within('load_assignment', () => compileEndpoints(c.loadAssignment!)) : [];
  } else {
    throw new ConfigError(`cluster discovery type ${Cluster_DiscoveryType[type] ?? type} is not supported (EDS, STATIC)`);
  }
  return {
    name: c.name,
    edsName,
    lb,
    http2: c.http2ProtocolOptions !== undefined,
    connectTimeoutMs: millis(c.connectTimeout, 5_000),
    breakers,
    outlier,
    staticEndpoints,
  };
}

/** The usable endpoints of a ClusterLoadAssignment. */
export function compileEndpoints(cla: ClusterLoadAssignment): UpstreamEndpoint[] {
  const out: UpstreamEndpoint[] = [];
  cla.endpoints.forEach((locality, li) => {
    locality.lbEndpoints.forEach((lbe, ei) => {
      within(`endpoints[${li}].lb_endpoints[${ei}]`, () => {
        if (lbe.hostIdentifier?.$case !== 'endpoint') throw new ConfigError('lb endpoint needs endpoint (endpoint_name is not supported)');
        const a = lbe.hostIdentifier.value.address?.address;
        if (a?.$case === 'envoyInternalAddress') {
          const n = a.value.addressNameSpecifier;
          if (n?.$case !== 'serverListenerName' || !n.value) throw new ConfigError('envoy_internal_address needs server_listener_name');
          out.push({ address: '', port: 0, weight: lbe.loadBalancingWeight ?? 1, health: 'healthy', internalListener: n.value });
          return;
        }
        if (a?.$case !== 'socketAddress') throw new ConfigError('endpoint address must be a socket_address or envoy_internal_address');
        const port = a.value.portSpecifier?.$case === 'portValue' ? a.value.portSpecifier.value : 0;
        if (!a.value.address || port <= 0 || port > 65535) throw new ConfigError(`endpoint address ${a.value.address}:${port} is not ip:port`);
        let health: UpstreamEndpoint['health'] | undefined;
        switch (lbe.healthStatus) {
          case HealthStatus.UNKNOWN:
          case HealthStatus.HEALTHY:
            health = 'healthy';
            break;
          case HealthStatus.DEGRADED:
            health = 'degraded';
            break;
          default:
            health = undefined; // UNHEALTHY, DRAINING, TIMEOUT: not used
        }
        if (!health) return;
        const meta = lbe.metadata?.filterMetadata ?? {};
        out.push({
          address: a.value.address,
          port,
          weight: lbe.loadBalancingWeight ?? 1,
          health,
          hbone: hboneOf(meta, a.value.address),
          workload: parseEndpointWorkload(plain(meta[ENDPOINT_WORKLOAD_METADATA.filter])?.[ENDPOINT_WORKLOAD_METADATA.field]),
        });
      });
    });
  });
  return out;
}

/**
 * Endpoint metadata that marks a mesh workload (Istio's convention):
 * filter_metadata["envoy.transport_socket_match"].tunnel = "http", and optionally
 * filter_metadata["nodemesh"] = { hbone: "ip:15008", identity: "spiffe://…" }.
 */
function hboneOf(meta: Record<string, unknown>, address: string): UpstreamEndpoint['hbone'] {
  const tsm = plain(meta['envoy.transport_socket_match']);
  if (tsm?.tunnel !== 'http') return undefined;
  const nm = plain(meta['nodemesh']);
  const hbone = typeof nm?.hbone === 'string' ? nm.hbone : `${address}:${HBONE_PORT}`;
  const colon = hbone.lastIndexOf(':');
  return {
    address: hbone.slice(0, colon).replace(/^\[|\]$/g, ''),
    port: Number(hbone.slice(colon + 1)) || HBONE_PORT,
    identity: typeof nm?.identity === 'string' ? nm.identity : undefined,
  };
}

/** ts-proto decodes google.protobuf.Struct into a plain object. */
function plain(v: unknown): Record<string, unknown> | undefined {
  return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
}
