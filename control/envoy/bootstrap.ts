// The bootstrap that makes a real Envoy a nodemesh waypoint: its node identity (which the control
// plane maps to the waypoint's Gateway), an ADS stream to the control plane over mutual TLS with
// the waypoint's certificate files, LDS and CDS over that stream, and the internal-listener
// bootstrap extension the waypoint's listener structure needs.
import { isIP } from 'node:net';
import { Bootstrap } from '../../api/gen/envoy/config/bootstrap/v3/bootstrap';
import { Cluster_DiscoveryType, Cluster_DnsLookupFamily } from '../../api/gen/envoy/config/cluster/v3/cluster';
import { ApiConfigSource_ApiType, ApiVersion } from '../../api/gen/envoy/config/core/v3/config_source';
import { InternalListener } from '../../api/gen/envoy/extensions/bootstrap/internal_listener/v3/internal_listener';
import { TlsParameters_TlsProtocol } from '../../api/gen/envoy/extensions/transport_sockets/tls/v3/common';
import { UpstreamTlsContext } from '../../api/gen/envoy/extensions/transport_sockets/tls/v3/tls';
import { HttpProtocolOptions } from '../../api/gen/envoy/extensions/upstreams/http/v3/http_protocol_options';
import { pack } from './any';
import { ADS_CONFIG_SOURCE } from './clusters';
import { DEFAULT_ENVOY_OPTIONS } from './model';
import { duration } from './proto';
import { HCM_FILTER, ROUTER_HTTP_FILTER, TLS_TRANSPORT_SOCKET } from './names';
import { Router } from '../../api/gen/envoy/extensions/filters/http/router/v3/router';
import { HttpConnectionManager } from '../../api/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager';
import { ADMIN_PORT, ENVOY_STATS_PATH, ENVOY_STATS_PORT, READY_PORT, XDS_TLS_PORT } from '../../common/contracts/ports';
import { sdsTlsFields } from './sds-file';

export const XDS_CLUSTER = 'xds-grpc';
/** The static cluster that reaches Envoy's own admin interface (loopback). */
export const ADMIN_CLUSTER = 'envoy-admin';
/** The static listener that serves the readiness check. */
export const READY_LISTENER = 'readiness';
/** The static listener that serves Envoy's stats to Prometheus. */
export const STATS_LISTENER = 'prometheus_stats';

export interface WaypointBootstrapOptions {
  readonly name: string;
  readonly namespace: string;
  /** The waypoint's own IP (node id and metadata; informational). */
  readonly ip?: string;
  /** Where the control plane's TLS xDS port is: host:port (default nodemesh-control.nodemesh-system.svc:15012). */
  readonly xdsAddress?: string;
  /** Server name the control plane's certificate carries (default: the xDS host). */
  readonly xdsServerName?: string;
  /**
   * Certificate files (the waypoint's SPIFFE certificate, key and the mesh roots): the xDS cluster
   * presents the certificate, and it is the ADS credential on 15012 (no token).
   */
  readonly certFiles?: { readonly chain: string; readonly key: string; readonly roots: string };
  /** Use delta ADS instead of state of the world. */
  readonly delta?: boolean;
  readonly domainSuffix?: string;
  /** Admin interface port on 127.0.0.1 (default 15000). */
  readonly adminPort?: number;
  /** Port of the readiness listener on 0.0.0.0 (default 15021). */
  readonly readyPort?: number;
  /** Port of the Prometheus stats listener on 0.0.0.0 (default 15090). */
  readonly statsPort?: number;
}

export function waypointNodeId(o: Pick<WaypointBootstrapOptions, 'name' | 'namespace' | 'ip' | 'domainSuffix'>): string {
  return `waypoint~${o.ip ?? '0.0.0.0'}~${o.name}.${o.namespace}~${o.namespace}.svc.${o.domainSuffix ?? 'cluster.local'}`;
}

function splitHostPort(address: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  if (!m) throw new Error(`xDS address "${address}" is not host:port (e.g. 10.199.0.1:15012 or nodemesh-control.nodemesh-system.svc:15012)`);
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new Error(`xDS address "${address}": port ${port} is out of range`);
  return { host: m[1]!, port };
}

export function waypointBootstrap(o: WaypointBootstrapOptions): Bootstrap {
  const certs = o.certFiles ?? DEFAULT_ENVOY_OPTIONS.certFiles;
  const { host, port } = splitHostPort(o.xdsAddress ?? `nodemesh-control.nodemesh-system.svc:${XDS_TLS_PORT}`);
  const tls = UpstreamTlsContext.fromPartial({
    sni: o.xdsServerName ?? host,
    commonTlsContext: {
      tlsParams: { tlsMinimumProtocolVersion: TlsParameters_TlsProtocol.TLSv1_2 },
      alpnProtocols: ['h2'],
      // Over SDS from files next to the certificates (written by `waypoint cert-agent`), so a
      // renewed certificate reaches this connection too (sds-file.ts).
      ...sdsTlsFields(certs),
    },
  });
  const http2 = HttpProtocolOptions.fromPartial({
    upstreamProtocolOptions: { $case: 'explicitHttpConfig', value: { protocolConfig: { $case: 'http2ProtocolOptions', value: {} } } },
  });
  return Bootstrap.fromPartial({
    node: {
      id: waypointNodeId(o),
      cluster: `${o.name}.${o.namespace}`,
      metadata: { NODEMESH_WAYPOINT: `${o.namespace}/${o.name}`, NAMESPACE: o.namespace, ...(o.ip ? { INSTANCE_IPS: o.ip } : {}) },
    },
    admin: {
      address: {
        address: { $case: 'socketAddress', value: { address: '127.0.0.1', portSpecifier: { $case: 'portValue', value: o.adminPort ?? ADMIN_PORT } } },
      },
    },
    staticResources: {
      listeners: [
        adminRouteListener(READY_LISTENER, o.readyPort ?? READY_PORT, { $case: 'path', value: '/healthz/ready' }, '/ready'),
        adminRouteListener(STATS_LISTENER, o.statsPort ?? ENVOY_STATS_PORT, { $case: 'prefix', value: ENVOY_STATS_PATH }),
      ],
      clusters: [
        {
          name: XDS_CLUSTER,
          clusterDiscoveryType: { $case: 'type', value: isIP(host) ? Cluster_DiscoveryType.STATIC : Cluster_DiscoveryType.STRICT_DNS },
          dnsLookupFamily: isIP(host) ? Cluster_DnsLookupFamily.AUTO : Cluster_DnsLookupFamily.V4_PREFERRED,
          connectTimeout: duration(5000),
          typedExtensionProtocolOptions: { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': pack(HttpProtocolOptions, http2) },
          loadAssignment: {
            clusterName: XDS_CLUSTER,
            endpoints: [
              {
                lbEndpoints: [
                  {
                    hostIdentifier: {
                      $case: 'endpoint',
                      value: { address: { address: { $case: 'socketAddress', value: { address: host, portSpecifier: { $case: 'portValue', value: port } } } } },
                    },
                  },
                ],
              },
            ],
          },
          transportSocket: { name: TLS_TRANSPORT_SOCKET, configType: { $case: 'typedConfig', value: pack(UpstreamTlsContext, tls) } },
        },
        staticLoopbackCluster(ADMIN_CLUSTER, o.adminPort ?? ADMIN_PORT),
      ],
    },
    dynamicResources: {
      adsConfig: {
        apiType: o.delta ? ApiConfigSource_ApiType.DELTA_GRPC : ApiConfigSource_ApiType.GRPC,
        transportApiVersion: ApiVersion.V3,
        setNodeOnFirstMessageOnly: true,
        // No initial metadata: the ADS credential is the waypoint certificate the xDS cluster
        // presents (renewed over SDS); a token here would be a secret in Envoy's config that Envoy
        // never re-reads (docs/security.md).
        grpcServices: [{ targetSpecifier: { $case: 'envoyGrpc', value: { clusterName: XDS_CLUSTER } } }],
      },
      ldsConfig: ADS_CONFIG_SOURCE,
      cdsConfig: ADS_CONFIG_SOURCE,
    },
    bootstrapExtensions: [{ name: 'envoy.bootstrap.internal_listener', typedConfig: pack(InternalListener, InternalListener.fromPartial({})) }],
  });
}

// Readiness and metrics, the way Istio's proxies do it: the admin interface stays on 127.0.0.1 (it
// can drain, quit and dump secrets-adjacent config, so nothing off the pod may reach it), and
// static listeners on 0.0.0.0 forward one path each to it. 15021: only GET /healthz/ready, to the
// admin's /ready — 200 once Envoy is LIVE (its first LDS/CDS from the control plane applied), 503
// while it initialises or drains; kubelet's httpGet probe reaches it on the pod IP (no exec, no
// curl in the image). 15090: only /stats/prometheus, what the pod's scrape annotations name.
function adminRouteListener(name: string, port: number, match: { $case: 'path' | 'prefix'; value: string }, rewrite?: string) {
  const hcm = HttpConnectionManager.fromPartial({
    statPrefix: name,
    routeSpecifier: {
      $case: 'routeConfig',
      value: {
        name,
        virtualHosts: [
          {
            name,
            domains: ['*'],
            routes: [
              {
                match: { pathSpecifier: match },
                action: {
                  $case: 'route',
                  value: { clusterSpecifier: { $case: 'cluster', value: ADMIN_CLUSTER }, ...(rewrite ? { prefixRewrite: rewrite } : {}) },
                },
              },
            ],
          },
        ],
      },
    },
    httpFilters: [{ name: ROUTER_HTTP_FILTER, configType: { $case: 'typedConfig', value: pack(Router, Router.fromPartial({})) } }],
  });
  return {
    name,
    address: { address: { $case: 'socketAddress' as const, value: { address: '0.0.0.0', portSpecifier: { $case: 'portValue' as const, value: port } } } },
    filterChains: [{ filters: [{ name: HCM_FILTER, configType: { $case: 'typedConfig' as const, value: pack(HttpConnectionManager, hcm) } }] }],
  };
}

function staticLoopbackCluster(name: string, port: number) {
  const endpoint = {
    address: { address: { $case: 'socketAddress' as const, value: { address: '127.0.0.1', portSpecifier: { $case: 'portValue' as const, value: port } } } },
  };
  return {
    name,
    clusterDiscoveryType: { $case: 'type' as const, value: Cluster_DiscoveryType.STATIC },
    connectTimeout: duration(1000),
    loadAssignment: { clusterName: name, endpoints: [{ lbEndpoints: [{ hostIdentifier: { $case: 'endpoint' as const, value: endpoint } }] }] },
  };
}
