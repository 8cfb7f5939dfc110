// RouteConfiguration -> a route table: virtual host selection by :authority (exact, then
// `*.suffix` and `prefix.*` wildcards longest first, then `*`; the port is tried as sent and then
// stripped) and the first matching route in order. Each route is compiled once into a matcher and
// an action (cluster/weighted clusters, redirect, direct response) with its rewrite, header,
// timeout, retry, mirror and per-filter settings.
import type { RouteConfiguration } from '../../api/gen/envoy/config/route/v3/route';
import {
  RedirectAction_RedirectResponseCode,
  type RedirectAction,
  type RetryPolicy,
  type Route,
  type RouteAction,
  type VirtualHost,
} from '../../api/gen/envoy/config/route/v3/route_components';
import type { Any } from '../../api/gen/google/protobuf/any';
import { fraction, millis } from './duration';
import { ConfigError, within } from './errors';
import { compileFault, type FaultPolicy } from './fault';
import { compileMutation, type HeaderMutation, NO_MUTATION } from './headers';
import { compileHeaderMatcher, compileQueryParameterMatcher, compileRegex, type RequestMatch } from './matchers';
import { compileRbacFilter, type RbacEngine } from './rbac';
import { compileRateLimit, type RateLimitPolicy } from './ratelimit';
import { pathOnly, queryParams, type RequestView } from './request';
import { codecs, typeNameOf, unpackAs, unwrapFilterConfig } from './typed';

/** Filter names whose per-route config the waypoint reads. */
export const FILTER = {
  rbac: 'envoy.filters.http.rbac',
  fault: 'envoy.filters.http.fault',
  localRateLimit: 'envoy.filters.http.local_ratelimit',
  router: 'envoy.filters.http.router',
} as const;

export interface PerFilter {
  /** null: the filter is disabled for this route. */
  readonly rbac?: RbacEngine | null;
  readonly fault?: FaultPolicy | null;
  readonly rateLimit?: RateLimitPolicy | null;
}

export interface CompiledRetry {
  readonly on: ReadonlySet<string>;
  readonly numRetries: number;
  readonly perTryTimeoutMs: number;
  readonly retriableStatusCodes: ReadonlySet<number>;
  readonly baseMs: number;
  readonly maxMs: number;
}

export interface WeightedTarget {
  readonly cluster: string;
  readonly weight: number;
  readonly requestHeaders: HeaderMutation;
  readonly responseHeaders: HeaderMutation;
  readonly hostRewrite: string | undefined;
}

export interface MirrorPolicy {
  readonly cluster: string;
  readonly fraction: number;
  readonly appendShadowSuffix: boolean;
}

export interface ForwardAction {
  readonly kind: 'forward';
  readonly cluster?: string;
  /** `cluster` as the target every request takes (made once, not per request). */
  readonly clusterTarget?: WeightedTarget;
  readonly clusterHeader?: string;
  readonly weighted?: { readonly targets: readonly WeightedTarget[]; readonly total: number };
  readonly prefixRewrite?: string;
  readonly regexRewrite?: { readonly re: RegExp; readonly substitution: string };
  readonly hostRewrite?: string;
  readonly hostRewriteHeader?: string;
  /** 0: no timeout. */
  readonly timeoutMs: number;
  readonly retry?: CompiledRetry;
  readonly mirrors: readonly MirrorPolicy[];
}

export interface RedirectResult {
  readonly kind: 'redirect';
  readonly status: number;
  readonly redirect: RedirectAction;
  readonly regex?: { readonly re: RegExp; readonly substitution: string };
}

export interface DirectResult {
  readonly kind: 'direct';
  readonly status: number;
  readonly body: string;
}

export type CompiledAction = ForwardAction | RedirectResult | DirectResult;

export interface CompiledRoute {
  readonly name: string;
  readonly matches: (req: RequestView) => boolean;
  /** For prefix_rewrite: what the route matched on (prefix or path). */
  readonly matchedPrefix: string | undefined;
  readonly action: CompiledAction;
  readonly requestHeaders: HeaderMutation;
  readonly responseHeaders: HeaderMutation;
  readonly perFilter: PerFilter;
}

export interface CompiledVirtualHost {
  readonly name: string;
  readonly domains: readonly string[];
  readonly routes: readonly CompiledRoute[];
  readonly requestHeaders: HeaderMutation;
  readonly responseHeaders: HeaderMutation;
  readonly perFilter: PerFilter;
  readonly retry?: CompiledRetry;
}

export interface RouteTable {
  readonly name: string;
  readonly virtualHosts: readonly CompiledVirtualHost[];
  readonly requestHeaders: HeaderMutation;
  readonly responseHeaders: HeaderMutation;
  /** The virtual host for an :authority, or undefined (Envoy answers 404). */
  selectVirtualHost(authority: string): CompiledVirtualHost | undefined;
}

export interface RouteMatchResult {
  readonly virtualHost: CompiledVirtualHost;
  readonly route: CompiledRoute;
}

/** First matching route of the selected virtual host, as Envoy does. */
export function matchRoute(table: RouteTable, req: RequestView): RouteMatchResult | undefined {
  const vh = table.selectVirtualHost(req.authority);
  if (!vh) return undefined;
  for (const route of vh.routes) if (route.matches(req)) return { virtualHost: vh, route };
  return undefined;
}

const DEFAULT_ROUTE_TIMEOUT_MS = 15_000;
const DEFAULT_BACKOFF_BASE_MS = 25;
const RETRY_ON = new Set([
  '5xx',
  'gateway-error',
  'reset',
  'reset-before-request',
  'connect-failure',
  'retriable-4xx',
  'refused-stream',
  'retriable-status-codes',
  // gRPC conditions (by grpc-status in the response headers/trailers-only response)
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
]);

export function compileRouteConfiguration(rc: RouteConfiguration): RouteTable {
  const vhosts = rc.virtualHosts.map((vh, i) => within(`virtual_hosts[${i}] (${vh.name})`, () => compileVirtualHost(vh)));
  const exact = new Map<string, CompiledVirtualHost>();
  const suffixes: Array<{ suffix: string; vh: CompiledVirtualHost }> = [];
  const prefixes: Array<{ prefix: string; vh: CompiledVirtualHost }> = [];
  let star: CompiledVirtualHost | undefined;
  for (const vh of vhosts) {
    for (const raw of vh.domains) {
      const d = raw.toLowerCase();
      const clash = (): never => {
        throw new ConfigError(`domain ${JSON.stringify(raw)} appears in more than one virtual host (${vh.name})`);
      };
      if (d === '*') {
        if (star) clash();
        star = vh;
      } else if (d.startsWith('*')) {
        if (suffixes.some((s) => s.suffix === d.slice(1))) clash();
        suffixes.push({ suffix: d.slice(1), vh });
      } else if (d.endsWith('*')) {
        if (prefixes.some((s) => s.prefix === d.slice(0, -1))) clash();
        prefixes.push({ prefix: d.slice(0, -1), vh });
      } else {
        if (exact.has(d)) clash();
        exact.set(d, vh);
      }
    }
  }
  suffixes.sort((a, b) => b.suffix.length - a.suffix.length);
  prefixes.sort((a, b) => b.prefix.length - a.prefix.length);
  const lookup = (host: string): CompiledVirtualHost | undefined => {
    const e = exact.get(host);
    if (e) return e;
    // A wildcard never matches the empty string: "*-bar.foo.com" does not match "-bar.foo.com".
    for (const s of suffixes) if (host.length > s.suffix.length && host.endsWith(s.suffix)) return s.vh;
    for (const p of prefixes) if (host.length > p.prefix.length && host.startsWith(p.prefix)) return p.vh;
    return undefined;
  };
  let lastAuthority: string | undefined;
  let lastHost: CompiledVirtualHost | undefined;
  return {
    name: rc.name,
    virtualHosts: vhosts,
    requestHeaders: compileMutation(rc.requestHeadersToAdd, rc.requestHeadersToRemove),
    responseHeaders: compileMutation(rc.responseHeadersToAdd, rc.responseHeadersToRemove),
    selectVirtualHost(authority) {
      // Most requests name the authority the one before did: compared, not lower-cased, hashed
      // and looked up again (the table never changes; a new configuration is a new table).
      if (authority === lastAuthority) return lastHost;
      const host = authority.toLowerCase();
      let vh = lookup(host);
      if (!vh) {
        const withoutPort = stripPort(host);
        if (withoutPort !== host) vh = lookup(withoutPort);
      }
      lastAuthority = authority;
      lastHost = vh ?? star;
      return lastHost;
    },
  };
}

function stripPort(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end > 0 ? host.slice(0, end + 1) : host;
  }
  const colon = host.lastIndexOf(':');
  return colon > 0 && host.indexOf(':') === colon && /^\d+$/.test(host.slice(colon + 1)) ? host.slice(0, colon) : host;
}

function compileVirtualHost(vh: VirtualHost): CompiledVirtualHost {
  if (vh.domains.length === 0) throw new ConfigError('virtual host has no domains');
  if (vh.matcher) throw new ConfigError('virtual host matcher (xDS matcher API) is not supported; use routes');
  const retry = vh.retryPolicy ? within('retry_policy', () => compileRetry(vh.retryPolicy!)) : undefined;
  return {
    name: vh.name,
    domains: vh.domains,
    routes: vh.routes.map((r, i) => within(`routes[${i}]${r.name ? ` (${r.name})` : ''}`, () => compileRoute(r, retry))),
    requestHeaders: compileMutation(vh.requestHeadersToAdd, vh.requestHeadersToRemove),
    responseHeaders: compileMutation(vh.responseHeadersToAdd, vh.responseHeadersToRemove),
    perFilter: compilePerFilter(vh.typedPerFilterConfig),
    retry,
  };
}

function compileRoute(r: Route, vhRetry: CompiledRetry | undefined): CompiledRoute {
  const match = r.match;
  if (!match) throw new ConfigError('route has no match');
  const { test, prefix } = compileRouteMatch(match);
  let action: CompiledAction;
  const a = r.action;
  if (!a) throw new ConfigError('route has no action (route, redirect or direct_response)');
  switch (a.$case) {
    case 'route':
      action = within('route', () => compileForward(a.value, vhRetry));
      break;
    case 'redirect':
      action = within('redirect', () => compileRedirect(a.value));
      break;
    case 'directResponse': {
      const d = a.value;
      if (d.status < 100 || d.status > 599) throw new ConfigError(`direct_response status ${d.status} is not in [100, 599]`);
      const spec = d.body?.specifier;
      let body = '';
      if (spec?.$case === 'inlineString') body = spec.value;
      else if (spec?.$case === 'inlineBytes') body = Buffer.from(spec.value).toString('utf8');
      else if (spec) throw new ConfigError(`direct_response body ${spec.$case} is not supported (use inline_string or inline_bytes)`);
      action = { kind: 'direct', status: d.status, body };
      break;
    }
    default:
      throw new ConfigError(`route action ${a.$case} is not supported by the nodemesh waypoint`);
  }
  return {
    name: r.name,
    matches: test,
    matchedPrefix: prefix,
    action,
    requestHeaders: compileMutation(r.requestHeadersToAdd, r.requestHeadersToRemove),
    responseHeaders: compileMutation(r.responseHeadersToAdd, r.responseHeadersToRemove),
    perFilter: compilePerFilter(r.typedPerFilterConfig),
  };
}

function compileRouteMatch(m: NonNullable<Route['match']>): { test: (req: RequestView) => boolean; prefix: string | undefined } {
  const caseSensitive = m.caseSensitive ?? true;
  const norm = caseSensitive ? (s: string): string => s : (s: string): string => s.toLowerCase();
  const spec = m.pathSpecifier;
  if (!spec) throw new ConfigError('route match has no path specifier (prefix, path, safe_regex or path_separated_prefix)');
  let pathTest: (path: string) => boolean;
  let prefix: string | undefined;
  switch (spec.$case) {
    case 'prefix': {
      const want = norm(spec.value);
      prefix = spec.value;
      pathTest = (p) => norm(p).startsWith(want);
      break;
    }
    case 'path': {
      const want = norm(spec.value);
      prefix = spec.value;
      pathTest = (p) => norm(pathOnly(p)) === want;
      break;
    }
    case 'safeRegex': {
      const re = compileRegex(spec.value);
      pathTest = (p) => re.test(pathOnly(p));
      break;
    }
    case 'pathSeparatedPrefix': {
      const v = spec.value;
      if (!v.startsWith('/') || (v.endsWith('/') && v.length > 1) || /[?#]/.test(v)) {
        throw new ConfigError(`path_separated_prefix ${JSON.stringify(v)} must start with "/", not end with "/" and hold no "?" or "#"`);
      }
      const want = norm(v);
      prefix = v;
      pathTest = (p) => {
        const path = norm(pathOnly(p));
        return path === want || (path.startsWith(want) && path.charAt(want.length) === '/');
      };
      break;
    }
    default:
      throw new ConfigError(`route match ${spec.$case} is not supported by the nodemesh waypoint`);
  }
  const headers: RequestMatch[] = m.headers.map((h, i) => within(`headers[${i}]`, () => compileHeaderMatcher(h)));
  const queries = m.queryParameters.map((q, i) => within(`query_parameters[${i}]`, () => compileQueryParameterMatcher(q)));
  const grpcOnly = m.grpc !== undefined;
  const runtime = m.runtimeFraction ? fraction(m.runtimeFraction.defaultValue, 1) : 1;
  if (m.dynamicMetadata.length > 0) throw new ConfigError('route match dynamic_metadata is not supported');
  const test = (req: RequestView): boolean => {
    if (!pathTest(req.path)) return false;
    for (const h of headers) if (!h(req)) return false;
    if (queries.length > 0) {
      const params = queryParams(req.path);
      for (const q of queries) if (!q(params)) return false;
    }
    if (grpcOnly && !(req.header('content-type') ?? '').startsWith('application/grpc')) return false;
    if (runtime < 1 && Math.random() >= runtime) return false;
    return true;
  };
  return { test, prefix };
}

export function compileRetry(p: RetryPolicy): CompiledRetry {
  const on = new Set(
    p.retryOn
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  for (const c of on)
    if (!RETRY_ON.has(c)) throw new ConfigError(`retry_on ${JSON.stringify(c)} is not a retry condition the waypoint knows (${[...RETRY_ON].join(', ')})`);
  const baseMs = millis(p.retryBackOff?.baseInterval, DEFAULT_BACKOFF_BASE_MS);
  if (p.retryBackOff && baseMs <= 0) throw new ConfigError('retry_back_off.base_interval must be positive');
  const maxMs = millis(p.retryBackOff?.maxInterval, baseMs * 10);
  if (maxMs < baseMs) throw new ConfigError('retry_back_off.max_interval must not be below base_interval');
  return {
    on,
    numRetries: p.numRetries ?? 1,
    perTryTimeoutMs: millis(p.perTryTimeout, 0),
    retriableStatusCodes: new Set(p.retriableStatusCodes),
    baseMs,
    maxMs,
  };
}

/**
 * Envoy's fully jittered exponential back-off: attempt n (1-based) waits a random time in
 * [0, min(max, base * (2^n - 1))].
 */
export function backoffMs(retry: CompiledRetry, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(retry.maxMs, retry.baseMs * (2 ** Math.min(attempt, 30) - 1));
  return Math.floor(random() * (ceiling + 1));
}

function compileForward(a: RouteAction, vhRetry: CompiledRetry | undefined): ForwardAction {
  const spec = a.clusterSpecifier;
  let cluster: string | undefined;
  let clusterHeader: string | undefined;
  let weighted: ForwardAction['weighted'];
  switch (spec?.$case) {
    case 'cluster':
      if (!spec.value) throw new ConfigError('cluster is empty');
      cluster = spec.value;
      break;
    case 'clusterHeader':
      clusterHeader = spec.value.toLowerCase();
      break;
    case 'weightedClusters': {
      const targets: WeightedTarget[] = spec.value.clusters.map((c, i) =>
        within(`weighted_clusters.clusters[${i}]`, () => {
          if (!c.name) throw new ConfigError('weighted cluster has no name');
          return {
            cluster: c.name,
            weight: c.weight ?? 0,
            requestHeaders: compileMutation(c.requestHeadersToAdd, c.requestHeadersToRemove),
            responseHeaders: compileMutation(c.responseHeadersToAdd, c.responseHeadersToRemove),
            hostRewrite: c.hostRewriteSpecifier?.$case === 'hostRewriteLiteral' ? c.hostRewriteSpecifier.value : undefined,
          };
        }),
      );
      const total = targets.reduce((s, t) => s + t.weight, 0);
      if (targets.length === 0 || total <= 0) throw new ConfigError('weighted_clusters needs at least one cluster with a positive weight');
      if (spec.value.totalWeight !== undefined && spec.value.totalWeight !== total) {
        throw new ConfigError(`weighted_clusters.total_weight ${spec.value.totalWeight} differs from the sum of the weights ${total}`);
      }
      weighted = { targets, total };
      break;
    }
    default:
      throw new ConfigError(`route action needs cluster, cluster_header or weighted_clusters${spec ? ` (${spec.$case} is not supported)` : ''}`);
  }
  let regexRewrite: ForwardAction['regexRewrite'];
  if (a.regexRewrite) {
    regexRewrite = { re: compileRegex(a.regexRewrite.pattern, false, 'g'), substitution: toJsSubstitution(a.regexRewrite.substitution) };
  }
  if (a.prefixRewrite && regexRewrite) throw new ConfigError('prefix_rewrite and regex_rewrite are mutually exclusive');
  let hostRewrite: string | undefined;
  let hostRewriteHeader: string | undefined;
  const h = a.hostRewriteSpecifier;
  if (h?.$case === 'hostRewriteLiteral') hostRewrite = h.value;
  else if (h?.$case === 'hostRewriteHeader') hostRewriteHeader = h.value.toLowerCase();
  else if (h && h.$case !== 'autoHostRewrite') throw new ConfigError(`host rewrite ${h.$case} is not supported`);
  const mirrors: MirrorPolicy[] = a.requestMirrorPolicies.map((m, i) =>
    within(`request_mirror_policies[${i}]`, () => {
      if (!m.cluster) throw new ConfigError('mirror policy needs cluster (cluster_header is not supported)');
      return {
        cluster: m.cluster,
        fraction: m.runtimeFraction ? fraction(m.runtimeFraction.defaultValue, 1) : 1,
        appendShadowSuffix: !m.disableShadowHostSuffixAppend,
      };
    }),
  );
  return {
    kind: 'forward',
    cluster,
    clusterTarget:
      cluster === undefined ? undefined : { cluster, weight: 1, requestHeaders: NO_MUTATION, responseHeaders: NO_MUTATION, hostRewrite: undefined },
    clusterHeader,
    weighted,
    prefixRewrite: a.prefixRewrite || undefined,
    regexRewrite,
    hostRewrite,
    hostRewriteHeader,
    timeoutMs: millis(a.timeout, DEFAULT_ROUTE_TIMEOUT_MS),
    retry: a.retryPolicy ? within('retry_policy', () => compileRetry(a.retryPolicy!)) : vhRetry,
    mirrors,
  };
}

/** RE2 substitutions use \1..\9; JavaScript uses $1..$9. */
function toJsSubstitution(s: string): string {
  return s.replace(/\$/g, '$$$$').replace(/\\(\d)/g, '$$$1');
}

function compileRedirect(r: RedirectAction): RedirectResult {
  const codes: Record<number, number> = {
    [RedirectAction_RedirectResponseCode.MOVED_PERMANENTLY]: 301,
    [RedirectAction_RedirectResponseCode.FOUND]: 302,
    [RedirectAction_RedirectResponseCode.SEE_OTHER]: 303,
    [RedirectAction_RedirectResponseCode.TEMPORARY_REDIRECT]: 307,
    [RedirectAction_RedirectResponseCode.PERMANENT_REDIRECT]: 308,
  };
  const status = codes[r.responseCode];
  if (!status) throw new ConfigError(`redirect response_code ${r.responseCode} is not known`);
  const p = r.pathRewriteSpecifier;
  const regex =
    p?.$case === 'regexRewrite' ? { re: compileRegex(p.value.pattern, false, 'g'), substitution: toJsSubstitution(p.value.substitution) } : undefined;
  return { kind: 'redirect', status, redirect: r, regex };
}

/** Where a redirect sends the client: Envoy's rules for scheme, host, port, path and query. */
export function redirectLocation(res: RedirectResult, req: RequestView, matchedPrefix: string | undefined): string {
  const r = res.redirect;
  let scheme = req.scheme;
  const s = r.schemeRewriteSpecifier;
  if (s?.$case === 'httpsRedirect' && s.value) scheme = 'https';
  else if (s?.$case === 'schemeRedirect' && s.value) scheme = s.value.toLowerCase();
  const authority = req.authority;
  const origPort = /:(\d+)$/.test(authority) && !authority.endsWith(']') ? authority.slice(authority.lastIndexOf(':') + 1) : '';
  let host = r.hostRedirect || stripPort(authority);
  let port = r.portRedirect ? String(r.portRedirect) : r.hostRedirect && r.hostRedirect.includes(':') ? '' : origPort;
  if (r.hostRedirect.includes(':') && !r.hostRedirect.startsWith('[')) port = '';
  // Envoy drops the default port of the scheme it redirects to.
  if ((scheme === 'https' && port === '443') || (scheme === 'http' && port === '80')) port = '';
  if (s && !r.portRedirect && origPort && scheme !== req.scheme) port = '';
  const q = req.path.indexOf('?');
  let path = q < 0 ? req.path : req.path.slice(0, q);
  let query = q < 0 ? '' : req.path.slice(q);
  const p = r.pathRewriteSpecifier;
  if (p?.$case === 'pathRedirect') {
    const pq = p.value.indexOf('?');
    if (pq >= 0) {
      query = p.value.slice(pq);
      path = p.value.slice(0, pq);
    } else path = p.value;
  } else if (p?.$case === 'prefixRewrite' && matchedPrefix !== undefined) {
    path = p.value + path.slice(matchedPrefix.length);
  } else if (res.regex) {
    path = path.replace(res.regex.re, res.regex.substitution);
  }
  if (r.stripQuery) query = '';
  host = host || 'localhost';
  return `${scheme}://${host}${port ? `:${port}` : ''}${path}${query}`;
}

/** Per-filter configs of a route or virtual host, keyed by filter name. */
export function compilePerFilter(configs: { [key: string]: Any }): PerFilter {
  const out: { rbac?: RbacEngine | null; fault?: FaultPolicy | null; rateLimit?: RateLimitPolicy | null } = {};
  for (const [name, raw] of Object.entries(configs)) {
    const { any, disabled, optional } = unwrapFilterConfig(raw);
    within(`typed_per_filter_config[${name}]`, () => {
      const type = any ? typeNameOf(any) : '';
      if (name === FILTER.rbac || type === codecs.rbacPerRoute.$type) {
        if (disabled) return (out.rbac = null);
        const per = unpackAs(any, codecs.rbacPerRoute, name);
        out.rbac = per.rbac ? (compileRbacFilter(per.rbac) ?? null) : null;
      } else if (name === FILTER.fault || type === codecs.fault.$type) {
        out.fault = disabled ? null : compileFault(unpackAs(any, codecs.fault, name));
      } else if (name === FILTER.localRateLimit || type === codecs.localRateLimit.$type) {
        out.rateLimit = disabled ? null : compileRateLimit(unpackAs(any, codecs.localRateLimit, name));
      } else if (!optional && !disabled) {
        throw new ConfigError(`no filter ${name} (${type}) in the nodemesh waypoint; mark it optional or remove it`);
      }
      return undefined;
    });
  }
  return out;
}

export { NO_MUTATION };
