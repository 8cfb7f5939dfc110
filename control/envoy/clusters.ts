// Service ports -> Envoy Clusters (EDS over ADS) and ClusterLoadAssignments (the selected
// Workloads' addresses at the resolved targetPort, grouped by node as the locality).
//
// Defaults, as Istio sets them: round robin, 10 s connect timeout, circuit breakers effectively
// off (max uint32) so Envoy's low built-in limits (1024) do not cap a busy waypoint, and a
// conservative outlier detection (5 consecutive 5xx/gateway errors eject a host for 30 s, at most
// half of the hosts).
import { Cluster, Cluster_DiscoveryType, Cluster_LbPolicy } from '../../api/gen/envoy/config/cluster/v3/cluster';
import { ApiVersion, type ConfigSource } from '../../api/gen/envoy/config/core/v3/config_source';
import { HealthStatus } from '../../api/gen/envoy/config/core/v3/health_check';
import { ClusterLoadAssignment } from '../../api/gen/envoy/config/endpoint/v3/endpoint';
import type { Metadata } from '../../api/gen/envoy/config/core/v3/base';
import type { LbEndpoint, LocalityLbEndpoints } from '../../api/gen/envoy/config/endpoint/v3/endpoint_components';
import { targetPortOf, type ServicePort, type Workload } from '../resources';
import { HEALTH_ANNOTATION } from '../../common/contracts/labels';
import { isHttp2Port, type ServiceInfo } from './model';
import { duration, type DeepPartial } from './proto';
import { outboundClusterName } from './names';
import { HBONE_PORT } from '../../common/contracts/ports';
import { canonicalRevision, canonicalService, DEFAULT_CLUSTER, ENDPOINT_WORKLOAD_METADATA, formatEndpointWorkload } from '../../common/contracts/telemetry';

const UINT32_MAX = 0xffffffff;

/** Resources come over the ADS stream the client opened. */
export const ADS_CONFIG_SOURCE: DeepPartial<ConfigSource> = {
  configSourceSpecifier: { $case: 'ads', value: {} },
  resourceApiVersion: ApiVersion.V3,
};

export function translateCluster(svc: ServiceInfo, port: ServicePort): Cluster {
  const name = outboundClusterName(port.port, svc.host);
  return Cluster.fromPartial({
    name,
    clusterDiscoveryType: { $case: 'type', value: Cluster_DiscoveryType.EDS },
    edsClusterConfig: { edsConfig: ADS_CONFIG_SOURCE, serviceName: name },
    connectTimeout: duration(10_000),
    lbPolicy: Cluster_LbPolicy.ROUND_ROBIN,
    circuitBreakers: {
      thresholds: [{ maxConnections: UINT32_MAX, maxPendingRequests: UINT32_MAX, maxRequests: UINT32_MAX, maxRetries: UINT32_MAX, trackRemaining: true }],
    },
    outlierDetection: {
      consecutive5xx: 5,
      consecutiveGatewayFailure: 5,
      interval: duration(10_000),
      baseEjectionTime: duration(30_000),
      maxEjectionPercent: 50,
      enforcingSuccessRate: 0,
    },
    ...(isHttp2Port(port) ? { http2ProtocolOptions: {} } : {}),
  });
}

/** The workload port a Service port reaches on one Workload, or undefined when it has none. */
export function resolveTargetPort(port: ServicePort, w: Workload): number | undefined {
  const target = targetPortOf(port);
  if (typeof target === 'number') return target;
  return w.spec.ports?.find((p) => p.name === target)?.port;
}

function healthOf(w: Workload): HealthStatus {
  switch (w.metadata.annotations?.[HEALTH_ANNOTATION]) {
    case 'unhealthy':
      return HealthStatus.UNHEALTHY;
    case 'draining':
      return HealthStatus.DRAINING;
    default:
      return HealthStatus.HEALTHY;
  }
}

/**
 * Every endpoint says which workload serves it as Istio does (filter_metadata["istio"].workload =
 * "name;namespace;canonical service;canonical revision;cluster", common/contracts/telemetry.ts),
 * for the destination labels of a waypoint's or Envoy's metrics.
 * Endpoints of enrolled workloads also carry Istio's tunnel marker and where to tunnel to, so a waypoint
 * (ours or Envoy with a transport_socket_match) reaches them over HBONE with the expected identity:
 * filter_metadata["envoy.transport_socket_match"].tunnel = "http",
 * filter_metadata["nodemesh"] = { hbone: "ip:15008", identity: "spiffe://…" }.
 */
function endpointMetadata(w: Workload, hbone: { address: string; trustDomain: string } | undefined): DeepPartial<Metadata> {
  const ns = w.metadata.namespace ?? '';
  const workload = formatEndpointWorkload({
    name: w.metadata.name,
    namespace: ns,
    canonicalService: canonicalService(w.metadata.labels, w.metadata.name),
    canonicalRevision: canonicalRevision(w.metadata.labels),
    cluster: DEFAULT_CLUSTER,
  });
  const filterMetadata: Record<string, Record<string, string>> = {};
  if (hbone) {
    const hostPort = hbone.address.includes(':') ? `[${hbone.address}]:${HBONE_PORT}` : `${hbone.address}:${HBONE_PORT}`;
    filterMetadata['envoy.transport_socket_match'] = { tunnel: 'http' };
    filterMetadata['nodemesh'] = { hbone: hostPort, identity: `spiffe://${hbone.trustDomain}/ns/${ns}/sa/${w.spec.serviceAccount}` };
  }
  filterMetadata[ENDPOINT_WORKLOAD_METADATA.filter] = { [ENDPOINT_WORKLOAD_METADATA.field]: workload };
  return { filterMetadata };
}

export function translateLoadAssignment(svc: ServiceInfo, port: ServicePort, trustDomain: string): ClusterLoadAssignment {
  const name = outboundClusterName(port.port, svc.host);
  const byNode = new Map<string, DeepPartial<LbEndpoint>[]>();
  for (const w of svc.workloads) {
    const targetPort = resolveTargetPort(port, w);
    if (targetPort === undefined) continue;
    // A Pod published before it has an IP is no endpoint yet.
    const address = w.spec.addresses.find((a) => !a.includes(':')) ?? w.spec.addresses[0];
    if (address === undefined) continue;
    let list = byNode.get(w.spec.node);
    if (!list) byNode.set(w.spec.node, (list = []));
    list.push({
      hostIdentifier: {
        $case: 'endpoint',
        value: { address: { address: { $case: 'socketAddress', value: { address, portSpecifier: { $case: 'portValue', value: targetPort } } } } },
      },
      healthStatus: healthOf(w),
      loadBalancingWeight: 1,
      metadata: endpointMetadata(w, svc.hbone.has(w) ? { address, trustDomain } : undefined),
    });
  }
  const endpoints: DeepPartial<LocalityLbEndpoints>[] = [...byNode.keys()].sort().map((node) => ({
    locality: { region: '', zone: '', subZone: node },
    lbEndpoints: byNode.get(node),
    loadBalancingWeight: byNode.get(node)!.length,
  }));
  return ClusterLoadAssignment.fromPartial({ clusterName: name, endpoints });
}
