// Listeners (and the clusters that reach a waypoint's internal listeners).
//
// A waypoint (docs/envoy.md "Waypoint listener structure"):
//   connect_terminate (0.0.0.0:15008, mTLS 1.3, ALPN h2) - an HCM that accepts HTTP/2 CONNECT; one
//     virtual host per Service port, domain `<VIP>:<port>` (the HBONE :authority), whose route
//     terminates the CONNECT and streams the tunnelled bytes to the STATIC cluster
//     `inbound-vip|<port>|<http|tcp>|<host>`, whose only endpoint is the internal listener of the
//     same name (Envoy's internal listeners: the bootstrap enables envoy.bootstrap.internal_listener);
//   inbound-vip|<port>|http|<host> - internal listener with an HCM: RDS `<host>:<port>`, RBAC
//     (DENY, then ALLOW), fault, local_ratelimit (when the Service asks), router;
//   inbound-vip|<port>|tcp|<host>  - internal listener with tcp_proxy to `outbound|<port>||<host>`.
// A proxyless gRPC client: one api_listener `<host>:<port>` per Service port whose HCM takes its
// routes over RDS (`<host>:<port>`) and runs fault + router (client-side filters only).
import { Cluster, Cluster_DiscoveryType } from '../../api/gen/envoy/config/cluster/v3/cluster';
import { Listener } from '../../api/gen/envoy/config/listener/v3/listener';
import type { Route, VirtualHost } from '../../api/gen/envoy/config/route/v3/route_components';
import { HTTPFault } from '../../api/gen/envoy/extensions/filters/http/fault/v3/fault';
import { LocalRateLimit } from '../../api/gen/envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit';
import { RBAC } from '../../api/gen/envoy/extensions/filters/http/rbac/v3/rbac';
import { Router } from '../../api/gen/envoy/extensions/filters/http/router/v3/router';
import {
  HttpConnectionManager,
  HttpConnectionManager_CodecType,
  type HttpFilter,
} from '../../api/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager';
import { RBAC as NetworkRBAC } from '../../api/gen/envoy/extensions/filters/network/rbac/v3/rbac';
import { TcpProxy } from '../../api/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy';
import { TlsParameters_TlsProtocol } from '../../api/gen/envoy/extensions/transport_sockets/tls/v3/common';
import { DownstreamTlsContext } from '../../api/gen/envoy/extensions/transport_sockets/tls/v3/tls';
import { TrafficDirection } from '../../api/gen/envoy/config/core/v3/base';
import { FractionalPercent_DenominatorType } from '../../api/gen/envoy/type/v3/percent';
import type { ServicePort } from '../resources';
import { pack } from './any';
import { ADS_CONFIG_SOURCE } from './clusters';
import { isTcpPort, type EnvoyTranslateOptions, type MeshIndex, type ServiceInfo, type WaypointInfo } from './model';
import { HBONE_PORT } from '../../common/contracts/ports';
import { duration, type DeepPartial } from './proto';
import { policiesFor, translateRbac } from './rbac';
import { sdsTlsFields } from './sds-file';
import {
  CONNECT_TERMINATE,
  FAULT_HTTP_FILTER,
  HCM_FILTER,
  LOCAL_RATELIMIT_HTTP_FILTER,
  RBAC_HTTP_FILTER,
  RBAC_NETWORK_FILTER,
  ROUTER_HTTP_FILTER,
  TCP_PROXY_FILTER,
  TLS_TRANSPORT_SOCKET,
  inboundVipName,
  outboundClusterName,
  servicePortName,
} from './names';

/** Annotation on a Service: requests per second its waypoint admits (per waypoint instance). */
export const RATE_LIMIT_ANNOTATION = 'ratelimit.nodemesh.io/requests-per-second';

const routerFilter = (): DeepPartial<HttpFilter> => ({
  name: ROUTER_HTTP_FILTER,
  configType: { $case: 'typedConfig', value: pack(Router, Router.fromPartial({})) },
});
const faultFilter = (): DeepPartial<HttpFilter> => ({
  name: FAULT_HTTP_FILTER,
  configType: { $case: 'typedConfig', value: pack(HTTPFault, HTTPFault.fromPartial({})) },
});

/** The api_listener a proxyless gRPC client resolves `xds:///<host>:<port>` with. */
export function translateApiListener(svc: ServiceInfo, port: ServicePort): Listener {
  const name = servicePortName(svc.host, port.port);
  const hcm = HttpConnectionManager.fromPartial({
    statPrefix: name,
    routeSpecifier: { $case: 'rds', value: { configSource: ADS_CONFIG_SOURCE, routeConfigName: name } },
    httpFilters: [faultFilter(), routerFilter()],
  });
  return Listener.fromPartial({ name, apiListener: { apiListener: pack(HttpConnectionManager, hcm) } });
}

function hbonePort(wp: WaypointInfo): number {
  return wp.gateway.spec.listeners.find((l) => l.protocol === 'HBONE')?.port ?? HBONE_PORT;
}

function protocolOf(port: ServicePort): 'http' | 'tcp' {
  return isTcpPort(port) ? 'tcp' : 'http';
}

/** The HBONE-terminating listener of a waypoint. */
export function translateConnectTerminate(wp: WaypointInfo, options: EnvoyTranslateOptions): Listener {
  const virtualHosts: DeepPartial<VirtualHost>[] = [];
  for (const svc of wp.services) {
    if (!svc.vip) continue;
    const vip = svc.vip.includes(':') ? `[${svc.vip}]` : svc.vip;
    for (const port of svc.service.spec.ports) {
      const target = inboundVipName(port.port, protocolOf(port), svc.host);
      const route: DeepPartial<Route> = {
        name: target,
        match: { pathSpecifier: { $case: 'connectMatcher', value: {} } },
        action: {
          $case: 'route',
          value: {
            clusterSpecifier: { $case: 'cluster', value: target },
            upgradeConfigs: [{ upgradeType: 'CONNECT', connectConfig: {} }],
            timeout: duration(0),
          },
        },
      };
      virtualHosts.push({ name: target, domains: [`${vip}:${port.port}`], routes: [route] });
    }
  }
  const hcm = HttpConnectionManager.fromPartial({
    statPrefix: CONNECT_TERMINATE,
    codecType: HttpConnectionManager_CodecType.HTTP2,
    http2ProtocolOptions: { allowConnect: true },
    upgradeConfigs: [{ upgradeType: 'CONNECT' }],
    routeSpecifier: { $case: 'routeConfig', value: { name: CONNECT_TERMINATE, virtualHosts } },
    httpFilters: [routerFilter()],
  });
  const tls = DownstreamTlsContext.fromPartial({
    requireClientCertificate: true,
    commonTlsContext: {
      tlsParams: { tlsMinimumProtocolVersion: TlsParameters_TlsProtocol.TLSv1_3, tlsMaximumProtocolVersion: TlsParameters_TlsProtocol.TLSv1_3 },
      alpnProtocols: ['h2'],
      // Certificate and root over SDS from files: Envoy re-reads them when they rotate (sds-file.ts).
      ...sdsTlsFields(options.certFiles),
    },
  });
  return Listener.fromPartial({
    name: CONNECT_TERMINATE,
    address: { address: { $case: 'socketAddress', value: { address: '0.0.0.0', portSpecifier: { $case: 'portValue', value: hbonePort(wp) } } } },
    trafficDirection: TrafficDirection.INBOUND,
    filterChains: [
      {
        name: CONNECT_TERMINATE,
        transportSocket: { name: TLS_TRANSPORT_SOCKET, configType: { $case: 'typedConfig', value: pack(DownstreamTlsContext, tls) } },
        filters: [{ name: HCM_FILTER, configType: { $case: 'typedConfig', value: pack(HttpConnectionManager, hcm) } }],
      },
    ],
  });
}

/** The internal listener that serves one Service port inside a waypoint. */
export function translateServiceListener(index: MeshIndex, svc: ServiceInfo, port: ServicePort): Listener {
  const protocol = protocolOf(port);
  const name = inboundVipName(port.port, protocol, svc.host);
  let filter;
  const filters: { name: string; configType: { $case: 'typedConfig'; value: ReturnType<typeof pack> } }[] = [];
  if (protocol === 'tcp') {
    for (const rbac of translateRbac(index, policiesFor(index, svc), true)) {
      const network = NetworkRBAC.fromPartial({ rules: rbac.rules, statPrefix: `${name}.${rbac.rulesStatPrefix}` });
      filters.push({ name: RBAC_NETWORK_FILTER, configType: { $case: 'typedConfig', value: pack(NetworkRBAC, network) } });
    }
    const tcp = TcpProxy.fromPartial({ statPrefix: name, clusterSpecifier: { $case: 'cluster', value: outboundClusterName(port.port, svc.host) } });
    filter = { name: TCP_PROXY_FILTER, configType: { $case: 'typedConfig' as const, value: pack(TcpProxy, tcp) } };
  } else {
    const httpFilters: DeepPartial<HttpFilter>[] = [];
    for (const rbac of translateRbac(index, policiesFor(index, svc))) {
      httpFilters.push({ name: RBAC_HTTP_FILTER, configType: { $case: 'typedConfig', value: pack(RBAC, rbac) } });
    }
    httpFilters.push(faultFilter());
    const limit = rateLimit(index, svc);
    if (limit) httpFilters.push({ name: LOCAL_RATELIMIT_HTTP_FILTER, configType: { $case: 'typedConfig', value: pack(LocalRateLimit, limit) } });
    httpFilters.push(routerFilter());
    const hcm = HttpConnectionManager.fromPartial({
      statPrefix: name,
      codecType: HttpConnectionManager_CodecType.AUTO,
      routeSpecifier: { $case: 'rds', value: { configSource: ADS_CONFIG_SOURCE, routeConfigName: servicePortName(svc.host, port.port) } },
      httpFilters,
    });
    filter = { name: HCM_FILTER, configType: { $case: 'typedConfig' as const, value: pack(HttpConnectionManager, hcm) } };
  }
  return Listener.fromPartial({
    name,
    trafficDirection: TrafficDirection.INBOUND,
    listenerSpecifier: { $case: 'internalListener', value: {} },
    filterChains: [{ name, filters: [...filters, filter] }],
  });
}

/** The STATIC cluster whose only endpoint is a waypoint's internal listener of the same name. */
export function translateInternalCluster(svc: ServiceInfo, port: ServicePort): Cluster {
  const name = inboundVipName(port.port, protocolOf(port), svc.host);
  return Cluster.fromPartial({
    name,
    clusterDiscoveryType: { $case: 'type', value: Cluster_DiscoveryType.STATIC },
    connectTimeout: duration(10_000),
    loadAssignment: {
      clusterName: name,
      endpoints: [
        {
          lbEndpoints: [
            {
              hostIdentifier: {
                $case: 'endpoint',
                value: {
                  address: { address: { $case: 'envoyInternalAddress', value: { addressNameSpecifier: { $case: 'serverListenerName', value: name } } } },
                },
              },
            },
          ],
        },
      ],
    },
  });
}

function rateLimit(index: MeshIndex, svc: ServiceInfo): LocalRateLimit | undefined {
  const text = svc.service.metadata.annotations?.[RATE_LIMIT_ANNOTATION];
  if (text === undefined) return undefined;
  const rps = Number(text);
  if (!Number.isInteger(rps) || rps < 1) {
    index.warnings.push(
      `Service ${svc.namespace}/${svc.name}: ${RATE_LIMIT_ANNOTATION}="${text}" is not a whole number of requests per second (1 or more); no rate limit`,
    );
    return undefined;
  }
  const all = { defaultValue: { numerator: 100, denominator: FractionalPercent_DenominatorType.HUNDRED }, runtimeKey: 'local_rate_limit_enabled' };
  return LocalRateLimit.fromPartial({
    statPrefix: 'http_local_rate_limiter',
    tokenBucket: { maxTokens: rps, tokensPerFill: rps, fillInterval: duration(1000) },
    filterEnabled: all,
    filterEnforced: { ...all, runtimeKey: 'local_rate_limit_enforced' },
  });
}
