// Listener -> what the waypoint serves on a port: an HTTP connection manager (routes from RDS or
// inline, then the HTTP filter chain rbac / fault / local_ratelimit / router) or a tcp_proxy to a
// cluster. The port comes from a socket_address, or for Istio-style internal listeners from the
// name `inbound-vip|<port>|<protocol>|<host>`. A filter the waypoint does not have is refused
// (NACK) unless marked optional, as Envoy does.
import type { Listener } from '../../api/gen/envoy/config/listener/v3/listener';
import type { HttpConnectionManager } from '../../api/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager';
import { ConfigError, within } from './errors';
import { compileFault, type FaultPolicy } from './fault';
import { compileRbac, compileRbacFilter, type RbacEngine } from './rbac';
import { compileRateLimit, type RateLimitPolicy } from './ratelimit';
import { compileRouteConfiguration, FILTER, type RouteTable } from './routes';
import { codecs, typeNameOf, unpackAs } from './typed';

export const HCM_FILTER = 'envoy.filters.network.http_connection_manager';
export const TCP_PROXY_FILTER = 'envoy.filters.network.tcp_proxy';
export const NETWORK_RBAC_FILTER = 'envoy.filters.network.rbac';

export type HttpFilterConfig =
  | { readonly kind: 'rbac'; readonly name: string; readonly engine: RbacEngine | undefined; readonly shadow: RbacEngine | undefined }
  | { readonly kind: 'fault'; readonly name: string; readonly policy: FaultPolicy }
  | { readonly kind: 'ratelimit'; readonly name: string; readonly policy: RateLimitPolicy | undefined };

export interface HttpListenerConfig {
  readonly kind: 'http';
  /** Routes from RDS by this name, or inline. */
  readonly rdsName: string | undefined;
  readonly inlineRoutes: RouteTable | undefined;
  /** The filters before the router, in order. */
  readonly filters: readonly HttpFilterConfig[];
  readonly statPrefix: string;
}

export interface TcpListenerConfig {
  readonly kind: 'tcp';
  readonly cluster: string;
  readonly statPrefix: string;
  /** envoy.filters.network.rbac filters before tcp_proxy, in order (by peer identity, IP, port). */
  readonly rbac: readonly RbacEngine[];
}

/**
 * The HBONE terminator Envoy needs as a Listener (`connect_terminate`: an HCM with CONNECT
 * upgrades whose virtual hosts are `VIP:port`). The waypoint terminates HBONE itself on its own
 * port; from this listener it only takes which cluster (= internal listener) a CONNECT authority
 * goes to.
 */
export interface ConnectListenerConfig {
  readonly kind: 'connect';
  /** CONNECT authority ("ip:port", "[v6]:port") -> cluster name. */
  readonly targets: ReadonlyMap<string, string>;
}

export interface CompiledListener {
  readonly name: string;
  /** IP the listener names (0.0.0.0 / :: for any), or undefined for internal listeners. */
  readonly address: string | undefined;
  readonly port: number;
  readonly config: HttpListenerConfig | TcpListenerConfig | ConnectListenerConfig;
}

export function compileListener(l: Listener): CompiledListener {
  if (!l.name) throw new ConfigError('listener has no name');
  let address: string | undefined;
  let port: number;
  const a = l.address?.address;
  if (a?.$case === 'socketAddress') {
    address = a.value.address;
    port = a.value.portSpecifier?.$case === 'portValue' ? a.value.portSpecifier.value : 0;
  } else {
    const m = /^inbound-vip\|(\d+)\|/.exec(l.name);
    if (!m) throw new ConfigError('listener needs a socket_address (or an internal listener named inbound-vip|<port>|…)');
    port = Number(m[1]);
  }
  if (port <= 0 || port > 65535) throw new ConfigError(`listener port ${port} is not in 1..65535`);
  const chains = [...l.filterChains, ...(l.defaultFilterChain ? [l.defaultFilterChain] : [])];
  if (chains.length === 0) throw new ConfigError('listener has no filter_chains');
  // The waypoint serves one filter chain per listener: the first (filter_chain_match is not evaluated).
  const chain = chains[0]!;
  const config = within('filter_chains[0]', () => {
    const terminal = chain.filters.find(
      (f) =>
        f.name === HCM_FILTER ||
        f.name === TCP_PROXY_FILTER ||
        (f.configType?.$case === 'typedConfig' && [codecs.hcm.$type as string, codecs.tcpProxy.$type].includes(typeNameOf(f.configType.value))),
    );
    if (!terminal) throw new ConfigError(`no ${HCM_FILTER} or ${TCP_PROXY_FILTER} filter (found: ${chain.filters.map((f) => f.name).join(', ') || 'none'})`);
    if (terminal.configType?.$case !== 'typedConfig') throw new ConfigError(`${terminal.name} needs typed_config (config_discovery is not supported)`);
    const any = terminal.configType.value;
    // Network filters before the terminal one: rbac is enforced, anything else refused unless optional.
    const rbac: RbacEngine[] = [];
    for (const [i, f] of chain.filters.entries()) {
      if (f === terminal) break;
      within(`filters[${i}] (${f.name})`, () => {
        const fa = f.configType?.$case === 'typedConfig' ? f.configType.value : undefined;
        if (fa && typeNameOf(fa) === codecs.networkRbac.$type) {
          const r = unpackAs(fa, codecs.networkRbac, f.name);
          if (r.matcher) throw new ConfigError('rbac matcher (the xDS matcher API) is not supported; use rules');
          const engine = r.rules ? within('rules', () => compileRbac(r.rules!)) : undefined;
          if (engine) rbac.push(engine);
        } else {
          throw new ConfigError(
            `the nodemesh waypoint has no network filter ${f.name}${fa ? ` (${typeNameOf(fa)})` : ''}; supported before the terminal filter: ${NETWORK_RBAC_FILTER}`,
          );
        }
      });
    }
    if (typeNameOf(any) === codecs.tcpProxy.$type) {
      const tp = unpackAs(any, codecs.tcpProxy, terminal.name);
      if (tp.clusterSpecifier?.$case !== 'cluster') throw new ConfigError('tcp_proxy needs cluster (weighted_clusters is not supported)');
      return { kind: 'tcp' as const, cluster: tp.clusterSpecifier.value, statPrefix: tp.statPrefix, rbac };
    }
    if (rbac.length > 0) throw new ConfigError(`${NETWORK_RBAC_FILTER} before an http_connection_manager is not supported; use the HTTP rbac filter`);
    const hcm = unpackAs(any, codecs.hcm, terminal.name);
    if (hcm.upgradeConfigs.some((u) => u.upgradeType.toUpperCase() === 'CONNECT')) return compileConnectTerminate(hcm);
    return compileHcm(hcm);
  });
  return { name: l.name, address, port, config };
}

/** The CONNECT routes of an HBONE-terminating HCM: authority -> cluster. */
export function compileConnectTerminate(h: HttpConnectionManager): ConnectListenerConfig {
  const rs = h.routeSpecifier;
  if (rs?.$case !== 'routeConfig') throw new ConfigError('an HBONE (CONNECT) listener needs inline route_config');
  const targets = new Map<string, string>();
  rs.value.virtualHosts.forEach((vh, i) =>
    within(`route_config.virtual_hosts[${i}] (${vh.name})`, () => {
      const route = vh.routes.find((r) => r.match?.pathSpecifier?.$case === 'connectMatcher');
      if (!route) return;
      if (route.action?.$case !== 'route' || route.action.value.clusterSpecifier?.$case !== 'cluster')
        throw new ConfigError('the CONNECT route must name a cluster');
      for (const d of vh.domains) targets.set(d.toLowerCase(), route.action.value.clusterSpecifier.value);
    }),
  );
  return { kind: 'connect', targets };
}

export function compileHcm(h: HttpConnectionManager): HttpListenerConfig {
  let rdsName: string | undefined;
  let inlineRoutes: RouteTable | undefined;
  const rs = h.routeSpecifier;
  if (rs?.$case === 'rds') {
    if (!rs.value.routeConfigName) throw new ConfigError('rds has no route_config_name');
    rdsName = rs.value.routeConfigName;
  } else if (rs?.$case === 'routeConfig') {
    inlineRoutes = within('route_config', () => compileRouteConfiguration(rs.value));
  } else {
    throw new ConfigError('http_connection_manager needs rds or route_config (scoped_routes is not supported)');
  }
  const filters: HttpFilterConfig[] = [];
  let sawRouter = false;
  h.httpFilters.forEach((f, i) =>
    within(`http_filters[${i}] (${f.name})`, () => {
      if (sawRouter) throw new ConfigError(`${FILTER.router} must be the last HTTP filter`);
      if (f.disabled) return;
      const any = f.configType?.$case === 'typedConfig' ? f.configType.value : undefined;
      const type = any ? typeNameOf(any) : '';
      if (f.name === FILTER.router || type === codecs.router.$type) {
        sawRouter = true;
      } else if (type === codecs.rbac.$type) {
        const r = unpackAs(any, codecs.rbac, f.name);
        filters.push({
          kind: 'rbac',
          name: f.name,
          engine: within('rules', () => compileRbacFilter(r)),
          shadow: r.shadowRules ? within('shadow_rules', () => compileRbacFilter({ ...r, rules: r.shadowRules, shadowRules: undefined })) : undefined,
        });
      } else if (type === codecs.fault.$type) {
        filters.push({ kind: 'fault', name: f.name, policy: compileFault(unpackAs(any, codecs.fault, f.name)) });
      } else if (type === codecs.localRateLimit.$type) {
        // Without a token_bucket the filter only applies the routes' own limits (per-route config).
        const c = unpackAs(any, codecs.localRateLimit, f.name);
        filters.push({ kind: 'ratelimit', name: f.name, policy: c.tokenBucket ? compileRateLimit(c) : undefined });
      } else if (!f.isOptional) {
        throw new ConfigError(`the nodemesh waypoint has no HTTP filter ${f.name}${type ? ` (${type})` : ''}; supported: rbac, fault, local_ratelimit, router`);
      }
    }),
  );
  if (!sawRouter) throw new ConfigError(`http_filters must end with ${FILTER.router}`);
  return { kind: 'http', rdsName, inlineRoutes, filters, statPrefix: h.statPrefix };
}
