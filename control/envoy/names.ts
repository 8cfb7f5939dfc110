// The names of the Envoy resources the control plane emits, Istio-style so that operators used to
// `istioctl proxy-config` recognise them, and the type URLs of the four xDS resource types.
import { Cluster } from '../../api/gen/envoy/config/cluster/v3/cluster';
import { ClusterLoadAssignment } from '../../api/gen/envoy/config/endpoint/v3/endpoint';
import { Listener } from '../../api/gen/envoy/config/listener/v3/listener';
import { RouteConfiguration } from '../../api/gen/envoy/config/route/v3/route';
import { typeUrl } from './any';

export const LISTENER_TYPE_URL = typeUrl(Listener);
export const ROUTE_TYPE_URL = typeUrl(RouteConfiguration);
export const CLUSTER_TYPE_URL = typeUrl(Cluster);
export const ENDPOINT_TYPE_URL = typeUrl(ClusterLoadAssignment);

/** The four Envoy types, in make-before-break order: CDS, EDS, LDS, RDS. */
export const ENVOY_TYPE_URLS: readonly string[] = [CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL];

/** Short names used by the CLI and logs. */
export const TYPE_SHORT_NAMES: Readonly<Record<string, string>> = {
  [LISTENER_TYPE_URL]: 'lds',
  [ROUTE_TYPE_URL]: 'rds',
  [CLUSTER_TYPE_URL]: 'cds',
  [ENDPOINT_TYPE_URL]: 'eds',
};

/** `<name>.<namespace>.svc.<domainSuffix>` */
export function serviceHost(namespace: string, name: string, domainSuffix: string): string {
  return `${name}.${namespace}.svc.${domainSuffix}`;
}

/** EDS cluster of one Service port: `outbound|8080||web.default.svc.cluster.local`. */
export function outboundClusterName(port: number, host: string): string {
  return `outbound|${port}||${host}`;
}

/**
 * The RouteConfiguration of one Service port, and the name of the proxyless gRPC client's
 * api_listener for it (the xds:/// target authority): `web.default.svc.cluster.local:8080`.
 */
export function servicePortName(host: string, port: number): string {
  return `${host}:${port}`;
}

/**
 * In a waypoint, the internal listener (and the STATIC cluster that reaches it) that serves one
 * Service port after HBONE termination: `inbound-vip|8080|http|web.default.svc.cluster.local`.
 */
export function inboundVipName(port: number, protocol: 'http' | 'tcp', host: string): string {
  return `inbound-vip|${port}|${protocol}|${host}`;
}

/** The waypoint's HBONE-terminating listener on 15008. */
export const CONNECT_TERMINATE = 'connect_terminate';

// Envoy's extension names (the `name` of a filter) and their typed_config types.
export const HCM_FILTER = 'envoy.filters.network.http_connection_manager';
export const TCP_PROXY_FILTER = 'envoy.filters.network.tcp_proxy';
export const RBAC_HTTP_FILTER = 'envoy.filters.http.rbac';
export const RBAC_NETWORK_FILTER = 'envoy.filters.network.rbac';
export const FAULT_HTTP_FILTER = 'envoy.filters.http.fault';
export const LOCAL_RATELIMIT_HTTP_FILTER = 'envoy.filters.http.local_ratelimit';
export const ROUTER_HTTP_FILTER = 'envoy.filters.http.router';
export const TLS_TRANSPORT_SOCKET = 'envoy.transport_sockets.tls';
