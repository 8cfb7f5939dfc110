// HTTPRoute (Gateway API mesh profile) -> Envoy RouteConfiguration for one Service port.
//
// Decisions (docs/envoy.md):
// - One RouteConfiguration per Service port, named `<host>:<port>`, one virtual host whose domains
//   are every name a client may use for the Service (host, short forms, VIP), with and without the
//   port. The gRPC xds:/// target authority is `<host>:<port>`.
// - Every match of every rule becomes one Envoy route; routes are ordered by Gateway API
//   precedence: exact path > regular expression > longest prefix (Istio's order for regex), then a
//   method match, more header matches, more query matches, the older HTTPRoute, then namespace/name,
//   then rule and match order.
// - PathPrefix `/foo` is emitted as two routes (path `/foo`, prefix `/foo/`) so it matches on path
//   segment boundaries for Envoy and for gRPC clients (which lack path_separated_prefix).
// - No HTTPRoute: one catch-all route to the Service itself. No backendRefs (or all weights 0):
//   a 500 direct response, as Gateway API asks.
// - Fault injection comes from HTTPRoute annotations (fault.nodemesh.io/*), applied as a per-route
//   override of the envoy.filters.http.fault filter.
import {
  RedirectAction_RedirectResponseCode,
  type HeaderMatcher,
  type QueryParameterMatcher,
  type RedirectAction,
  type Route,
  type RouteAction,
  type RouteAction_RequestMirrorPolicy,
  type RouteMatch,
  type RetryPolicy,
  type WeightedCluster_ClusterWeight,
} from '../../api/gen/envoy/config/route/v3/route_components';
import { RouteConfiguration } from '../../api/gen/envoy/config/route/v3/route';
import { HeaderValueOption_HeaderAppendAction, type HeaderValueOption } from '../../api/gen/envoy/config/core/v3/base';
import { HTTPFault } from '../../api/gen/envoy/extensions/filters/http/fault/v3/fault';
import { FractionalPercent_DenominatorType } from '../../api/gen/envoy/type/v3/percent';
import type { Any } from '../../api/gen/google/protobuf/any';
import { durationMs, type HTTPRoute, type HTTPRouteFilter, type HTTPRouteMatch, type HTTPRouteRule, type HeaderModifier, type ServicePort } from '../resources';
import { pack } from './any';
import { duration, type DeepPartial } from './proto';
import type { MeshIndex, ServiceInfo } from './model';
import { FAULT_HTTP_FILTER, outboundClusterName, servicePortName } from './names';

export const FAULT_ANNOTATIONS = {
  /** HTTP status to abort requests with, e.g. "503". */
  abortHttpStatus: 'fault.nodemesh.io/abort-http-status',
  /** gRPC status code to abort requests with, e.g. "14" (UNAVAILABLE). */
  abortGrpcStatus: 'fault.nodemesh.io/abort-grpc-status',
  /** Fixed delay before forwarding, a Gateway API duration such as "100ms". */
  delay: 'fault.nodemesh.io/delay',
  /** Share of requests affected, 0-100 (default 100). */
  percent: 'fault.nodemesh.io/percent',
} as const;

/** The names a client may use for a Service port (virtual host domains). */
export function serviceDomains(svc: ServiceInfo, port: number, domainSuffix: string): string[] {
  const names = [svc.host, `${svc.name}.${svc.namespace}.svc`, `${svc.name}.${svc.namespace}`, svc.name];
  if (svc.host !== `${svc.name}.${svc.namespace}.svc.${domainSuffix}`) names.push(`${svc.name}.${svc.namespace}.svc.${domainSuffix}`);
  if (svc.vip) names.push(svc.vip.includes(':') ? `[${svc.vip}]` : svc.vip);
  const out: string[] = [];
  for (const n of names) out.push(n, `${n}:${port}`);
  return [...new Set(out)];
}

interface Candidate {
  readonly route: DeepPartial<Route>;
  readonly rank: readonly (number | string)[];
}

/** The RouteConfiguration of one Service port. */
export function translateRouteConfig(index: MeshIndex, svc: ServiceInfo, port: ServicePort): RouteConfiguration {
  const routes = index.routesFor(svc, port);
  const candidates: Candidate[] = [];
  for (const route of routes) {
    const created = route.metadata.creationTimestamp ?? '';
    const fault = faultOverride(index, route);
    route.spec.rules.forEach((rule, ruleIndex) => {
      const action = ruleAction(index, svc, port, route, rule);
      rule.matches.forEach((match, matchIndex) => {
        const base = `${route.metadata.namespace ?? ''}.${route.metadata.name}.${ruleIndex}.${matchIndex}`;
        for (const [suffix, routeMatch, prefixMode] of envoyMatches(match)) {
          const r: DeepPartial<Route> = {
            name: base + suffix,
            match: routeMatch,
            ...action(prefixMode),
            ...(fault ? { typedPerFilterConfig: { [FAULT_HTTP_FILTER]: fault } } : {}),
          };
          candidates.push({
            route: r,
            rank: [...matchRank(match, prefixMode), created, `${route.metadata.namespace ?? ''}/${route.metadata.name}`, ruleIndex, matchIndex],
          });
        }
      });
    });
  }
  candidates.sort((a, b) => compareRank(a.rank, b.rank));
  const envoyRoutes = candidates.map((c) => c.route);
  if (routes.length === 0) {
    envoyRoutes.push({
      name: 'default',
      match: { pathSpecifier: { $case: 'prefix', value: '/' } },
      action: { $case: 'route', value: { clusterSpecifier: { $case: 'cluster', value: outboundClusterName(port.port, svc.host) }, timeout: duration(0) } },
    });
  }
  const name = servicePortName(svc.host, port.port);
  return RouteConfiguration.fromPartial({
    name,
    virtualHosts: [{ name, domains: serviceDomains(svc, port.port, index.options.domainSuffix), routes: envoyRoutes }],
    validateClusters: false,
  });
}

/** How a prefix rewrite must treat the match: the whole path (`exact`) or a `/`-ended prefix. */
type PrefixMode = 'exact' | 'slash' | 'none';

function normalizedPrefix(value: string): string {
  return value.length > 1 && value.endsWith('/') ? value.replace(/\/+$/, '') || '/' : value;
}

/** One Gateway API match as one or two Envoy matches. */
function envoyMatches(m: HTTPRouteMatch): [string, DeepPartial<RouteMatch>, PrefixMode][] {
  const headers: DeepPartial<HeaderMatcher>[] = [];
  for (const h of m.headers ?? []) {
    headers.push({
      name: h.name.toLowerCase(),
      headerMatchSpecifier: {
        $case: 'stringMatch',
        value: { matchPattern: h.type === 'RegularExpression' ? { $case: 'safeRegex', value: { regex: h.value } } : { $case: 'exact', value: h.value } },
      },
    });
  }
  if (m.method) headers.push({ name: ':method', headerMatchSpecifier: { $case: 'stringMatch', value: { matchPattern: { $case: 'exact', value: m.method } } } });
  const queryParameters: DeepPartial<QueryParameterMatcher>[] = (m.queryParams ?? []).map((q) => ({
    name: q.name,
    queryParameterMatchSpecifier: {
      $case: 'stringMatch',
      value: { matchPattern: q.type === 'RegularExpression' ? { $case: 'safeRegex', value: { regex: q.value } } : { $case: 'exact', value: q.value } },
    },
  }));
  const rest = { headers, queryParameters };
  const path = m.path ?? { type: 'PathPrefix' as const, value: '/' };
  switch (path.type) {
    case 'Exact':
      return [['', { pathSpecifier: { $case: 'path', value: path.value }, ...rest }, 'none']];
    case 'RegularExpression':
      return [['', { pathSpecifier: { $case: 'safeRegex', value: { regex: path.value } }, ...rest }, 'none']];
    case 'PathPrefix': {
      const prefix = normalizedPrefix(path.value);
      if (prefix === '/') return [['', { pathSpecifier: { $case: 'prefix', value: '/' }, ...rest }, 'slash']];
      return [
        ['', { pathSpecifier: { $case: 'path', value: prefix }, ...rest }, 'exact'],
        ['.prefix', { pathSpecifier: { $case: 'prefix', value: `${prefix}/` }, ...rest }, 'slash'],
      ];
    }
  }
}

/** Sort key: smaller sorts first. */
function matchRank(m: HTTPRouteMatch, mode: PrefixMode): number[] {
  const path = m.path ?? { type: 'PathPrefix', value: '/' };
  const kind = path.type === 'Exact' ? 0 : path.type === 'RegularExpression' ? 1 : 2;
  // The exact half of a split prefix ranks with its prefix (same specificity).
  const length = path.type === 'PathPrefix' ? normalizedPrefix(path.value).length : path.value.length;
  void mode;
  return [kind, -length, m.method ? 0 : 1, -(m.headers?.length ?? 0), -(m.queryParams?.length ?? 0)];
}

function compareRank(a: readonly (number | string)[], b: readonly (number | string)[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x === y) continue;
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

type RouteBody = Pick<DeepPartial<Route>, 'action' | 'requestHeadersToAdd' | 'requestHeadersToRemove' | 'responseHeadersToAdd' | 'responseHeadersToRemove'>;

/** The action of a rule, as a function of how the match treats a prefix (for prefix rewrites). */
function ruleAction(index: MeshIndex, svc: ServiceInfo, port: ServicePort, route: HTTPRoute, rule: HTTPRouteRule): (mode: PrefixMode) => RouteBody {
  const filters = rule.filters ?? [];
  const find = <T extends HTTPRouteFilter['type']>(t: T) => filters.find((f) => f.type === t) as Extract<HTTPRouteFilter, { type: T }> | undefined;
  const reqMod = find('RequestHeaderModifier')?.requestHeaderModifier;
  const resMod = find('ResponseHeaderModifier')?.responseHeaderModifier;
  const headers: RouteBody = {
    requestHeadersToAdd: headerOptions(reqMod),
    requestHeadersToRemove: reqMod?.remove ?? [],
    responseHeadersToAdd: headerOptions(resMod),
    responseHeadersToRemove: resMod?.remove ?? [],
  };
  const redirect = find('RequestRedirect')?.requestRedirect;
  if (redirect) {
    return (mode) => {
      const r: DeepPartial<RedirectAction> = { responseCode: REDIRECT_CODES[redirect.statusCode] ?? RedirectAction_RedirectResponseCode.FOUND };
      if (redirect.scheme) r.schemeRewriteSpecifier = { $case: 'schemeRedirect', value: redirect.scheme };
      if (redirect.hostname) r.hostRedirect = redirect.hostname;
      if (redirect.port) r.portRedirect = redirect.port;
      if (redirect.path?.type === 'ReplaceFullPath') r.pathRewriteSpecifier = { $case: 'pathRedirect', value: redirect.path.replaceFullPath ?? '/' };
      if (redirect.path?.type === 'ReplacePrefixMatch')
        r.pathRewriteSpecifier = { $case: 'prefixRewrite', value: prefixReplacement(redirect.path.replacePrefixMatch ?? '/', mode) };
      return { ...headers, action: { $case: 'redirect', value: r } };
    };
  }

  const who = `HTTPRoute ${route.metadata.namespace ?? ''}/${route.metadata.name}`;
  const backends = (rule.backendRefs ?? []).filter((b) => b.weight > 0);
  const clusterOf = (ref: { name: string; namespace?: string; port?: number }): string => {
    const ns = ref.namespace ?? route.metadata.namespace ?? '';
    const target = index.service(ns, ref.name);
    const p = ref.port ?? (target === svc ? port.port : (target?.service.spec.ports[0]?.port ?? port.port));
    if (!target) index.warnings.push(`${who}: backendRef Service ${ns}/${ref.name} does not exist; its share of requests fails`);
    else if (!target.service.spec.ports.some((sp) => sp.port === p)) index.warnings.push(`${who}: backendRef Service ${ns}/${ref.name} has no port ${p}`);
    return outboundClusterName(p, target?.host ?? `${ref.name}.${ns}.svc.${index.options.domainSuffix}`);
  };
  if (backends.length === 0) {
    return () => ({ ...headers, action: { $case: 'directResponse', value: { status: 500 } } });
  }
  const rewrite = find('URLRewrite')?.urlRewrite;
  const mirrors: DeepPartial<RouteAction_RequestMirrorPolicy>[] = filters
    .filter((f): f is Extract<HTTPRouteFilter, { type: 'RequestMirror' }> => f.type === 'RequestMirror')
    .map((f) => {
      const m = f.requestMirror;
      const policy: DeepPartial<RouteAction_RequestMirrorPolicy> = { cluster: clusterOf(m.backendRef) };
      const fraction = m.fraction
        ? Math.round((m.fraction.numerator * 1_000_000) / m.fraction.denominator)
        : m.percent !== undefined
          ? m.percent * 10_000
          : undefined;
      if (fraction !== undefined) policy.runtimeFraction = { defaultValue: { numerator: fraction, denominator: FractionalPercent_DenominatorType.MILLION } };
      return policy;
    });
  const useWeighted = backends.length > 1 || backends.some((b) => (b.filters ?? []).length > 0);
  const clusterSpecifier: DeepPartial<RouteAction>['clusterSpecifier'] = useWeighted
    ? {
        $case: 'weightedClusters',
        value: {
          clusters: backends.map((b): DeepPartial<WeightedCluster_ClusterWeight> => {
            const bf = b.filters ?? [];
            const bReq = bf.find((f) => f.type === 'RequestHeaderModifier');
            const bRes = bf.find((f) => f.type === 'ResponseHeaderModifier');
            const rq = bReq?.type === 'RequestHeaderModifier' ? bReq.requestHeaderModifier : undefined;
            const rs = bRes?.type === 'ResponseHeaderModifier' ? bRes.responseHeaderModifier : undefined;
            return {
              name: clusterOf(b),
              weight: b.weight,
              requestHeadersToAdd: headerOptions(rq),
              requestHeadersToRemove: rq?.remove ?? [],
              responseHeadersToAdd: headerOptions(rs),
              responseHeadersToRemove: rs?.remove ?? [],
            };
          }),
        },
      }
    : { $case: 'cluster', value: clusterOf(backends[0]!) };

  const requestMs = rule.timeouts?.request !== undefined ? durationMs(rule.timeouts.request) : 0;
  const backendMs = rule.timeouts?.backendRequest !== undefined ? durationMs(rule.timeouts.backendRequest) : undefined;
  const retry = retryPolicy(rule, backendMs);
  // Without retries, one attempt is the whole request: the tighter of the two timeouts applies.
  const timeoutMs = !retry && backendMs !== undefined ? (requestMs === 0 ? backendMs : Math.min(requestMs, backendMs)) : requestMs;

  return (mode) => {
    const action: DeepPartial<RouteAction> = { clusterSpecifier, timeout: duration(timeoutMs) };
    if (retry) action.retryPolicy = retry;
    if (mirrors.length) action.requestMirrorPolicies = mirrors;
    if (rewrite?.hostname) action.hostRewriteSpecifier = { $case: 'hostRewriteLiteral', value: rewrite.hostname };
    if (rewrite?.path?.type === 'ReplaceFullPath') {
      action.regexRewrite = { pattern: { regex: '^/.*$' }, substitution: rewrite.path.replaceFullPath ?? '/' };
    } else if (rewrite?.path?.type === 'ReplacePrefixMatch') {
      action.prefixRewrite = prefixReplacement(rewrite.path.replacePrefixMatch ?? '/', mode);
    }
    if (isGrpc(port)) action.maxStreamDuration = { grpcTimeoutHeaderMax: duration(0) };
    return { ...headers, action: { $case: 'route', value: action } };
  };
}

function isGrpc(p: ServicePort): boolean {
  return (p.appProtocol ?? '').toLowerCase() === 'grpc' || /^grpc(-|$)/.test(p.name ?? '');
}

/**
 * The replacement for a ReplacePrefixMatch. On the exact half of a split prefix the whole path is
 * the prefix; on the `/`-ended half the replacement keeps the separator.
 */
function prefixReplacement(replacement: string, mode: PrefixMode): string {
  if (mode !== 'slash') return replacement;
  return replacement.endsWith('/') ? replacement : `${replacement}/`;
}

const REDIRECT_CODES: Record<number, RedirectAction_RedirectResponseCode> = {
  301: RedirectAction_RedirectResponseCode.MOVED_PERMANENTLY,
  302: RedirectAction_RedirectResponseCode.FOUND,
  303: RedirectAction_RedirectResponseCode.SEE_OTHER,
  307: RedirectAction_RedirectResponseCode.TEMPORARY_REDIRECT,
  308: RedirectAction_RedirectResponseCode.PERMANENT_REDIRECT,
};

function headerOptions(mod: HeaderModifier | undefined): DeepPartial<HeaderValueOption>[] {
  if (!mod) return [];
  const out: DeepPartial<HeaderValueOption>[] = [];
  for (const h of mod.set ?? [])
    out.push({ header: { key: h.name.toLowerCase(), value: h.value }, appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD });
  for (const h of mod.add ?? [])
    out.push({ header: { key: h.name.toLowerCase(), value: h.value }, appendAction: HeaderValueOption_HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD });
  return out;
}

// HTTP status codes of HTTPRoute retry.codes that have a gRPC status equivalent (Envoy and gRPC
// clients retry on grpc-status by these retry_on names).
const GRPC_RETRY_ON: Record<number, string> = { 429: 'resource-exhausted', 500: 'internal', 503: 'unavailable', 504: 'deadline-exceeded' };

/** HTTPRoute retry -> RetryPolicy; none when retries are not configured or attempts is 0. */
function retryPolicy(rule: HTTPRouteRule, backendMs: number | undefined): DeepPartial<RetryPolicy> | undefined {
  const r = rule.retry;
  if (!r) return undefined;
  const attempts = r.attempts ?? 2;
  if (attempts === 0) return undefined;
  const codes = r.codes ?? [503];
  const on = ['connect-failure', 'refused-stream', 'retriable-status-codes', ...new Set(codes.map((c) => GRPC_RETRY_ON[c]).filter((s): s is string => !!s))];
  const policy: DeepPartial<RetryPolicy> = { retryOn: on.join(','), numRetries: attempts, retriableStatusCodes: codes };
  if (backendMs !== undefined) policy.perTryTimeout = duration(backendMs);
  if (r.backoff) {
    const base = Math.max(1, durationMs(r.backoff));
    policy.retryBackOff = { baseInterval: duration(base), maxInterval: duration(base * 10) };
  }
  return policy;
}

/** The fault-injection override an HTTPRoute's annotations ask for, packed; undefined when none. */
function faultOverride(index: MeshIndex, route: HTTPRoute): Any | undefined {
  const a = route.metadata.annotations ?? {};
  const httpStatus = a[FAULT_ANNOTATIONS.abortHttpStatus];
  const grpcStatus = a[FAULT_ANNOTATIONS.abortGrpcStatus];
  const delay = a[FAULT_ANNOTATIONS.delay];
  if (httpStatus === undefined && grpcStatus === undefined && delay === undefined) return undefined;
  const who = `HTTPRoute ${route.metadata.namespace ?? ''}/${route.metadata.name}`;
  const percentText = a[FAULT_ANNOTATIONS.percent] ?? '100';
  const percent = Number(percentText);
  if (!Number.isFinite(percent) || percent < 0 || percent > 100) {
    index.warnings.push(`${who}: ${FAULT_ANNOTATIONS.percent}="${percentText}" is not a number from 0 to 100; fault injection left out`);
    return undefined;
  }
  const percentage = { numerator: Math.round(percent * 10_000), denominator: FractionalPercent_DenominatorType.MILLION };
  const fault: DeepPartial<HTTPFault> = {};
  if (httpStatus !== undefined || grpcStatus !== undefined) {
    const http = httpStatus !== undefined ? Number(httpStatus) : undefined;
    const grpc = grpcStatus !== undefined ? Number(grpcStatus) : undefined;
    if (http !== undefined && !(Number.isInteger(http) && http >= 200 && http < 600)) {
      index.warnings.push(`${who}: ${FAULT_ANNOTATIONS.abortHttpStatus}="${httpStatus}" is not an HTTP status (200-599); fault injection left out`);
      return undefined;
    }
    if (grpc !== undefined && !(Number.isInteger(grpc) && grpc >= 0 && grpc <= 16)) {
      index.warnings.push(`${who}: ${FAULT_ANNOTATIONS.abortGrpcStatus}="${grpcStatus}" is not a gRPC status code (0-16); fault injection left out`);
      return undefined;
    }
    fault.abort = { errorType: grpc !== undefined ? { $case: 'grpcStatus', value: grpc } : { $case: 'httpStatus', value: http! }, percentage };
  }
  if (delay !== undefined) {
    if (!/^([0-9]{1,5}(h|m|s|ms)){1,4}$/.test(delay)) {
      index.warnings.push(`${who}: ${FAULT_ANNOTATIONS.delay}="${delay}" is not a duration such as "100ms"; fault injection left out`);
      return undefined;
    }
    fault.delay = { faultDelaySecifier: { $case: 'fixedDelay', value: duration(durationMs(delay)) }, percentage };
  }
  return pack(HTTPFault, HTTPFault.fromPartial(fault));
}
