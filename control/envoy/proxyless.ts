// RouteConfigurations as every proxyless gRPC client accepts them, old and new.
//
// gRPC's xDS clients learnt `HeaderMatcher.string_match` only with gRFC A63 (gRPC 1.54 and
// later); an older client — gRPC 1.51 is what Debian 12 ships — rejects the whole
// RouteConfiguration when one header matcher uses it ("Invalid route header matcher specified").
// Every gRPC version since xDS routing (gRFC A28) accepts the original one-of fields
// (`exact_match`, `safe_regex_match`, `prefix_match`, `suffix_match`, `contains_match`), so
// proxyless clients get those; Envoy and the waypoint keep the current `string_match` form. Old
// clients also check a weighted split against `total_weight` (100 when unset), so it is set to
// the weights' sum. gRPC does not expose the `:method` pseudo-header to route matching (every gRPC
// call is a POST), so a method match is decided here: `POST` always holds and is dropped, any
// other method never holds and its route is dropped. Pure, and cached per RouteConfiguration object: a route that needs no rewrite
// is returned as is, so its encoding (and version) is the one Envoy clients get.
import type { RouteConfiguration } from '../../api/gen/envoy/config/route/v3/route';
import type { HeaderMatcher, Route, RouteAction, VirtualHost } from '../../api/gen/envoy/config/route/v3/route_components';
import type { StringMatcher } from '../../api/gen/envoy/type/matcher/v3/string';

type Specifier = NonNullable<HeaderMatcher['headerMatchSpecifier']>;

/** RE2 syntax for a literal string. */
function re2Literal(s: string): string {
  return s.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&');
}

const regexMatch = (regex: string): Specifier => ({
  $case: 'safeRegexMatch',
  value: { $type: 'envoy.type.matcher.v3.RegexMatcher', regex, engineType: undefined },
});

/** A StringMatcher as a pre-A63 header match specifier; undefined when it has none. */
export function legacySpecifier(m: StringMatcher): Specifier | undefined {
  const p = m.matchPattern;
  if (!p) return undefined;
  if (m.ignoreCase) {
    // Header matching is on the whole value (RE2 full match); (?i) keeps the meaning.
    switch (p.$case) {
      case 'exact':
        return regexMatch(`(?i)${re2Literal(p.value)}`);
      case 'prefix':
        return regexMatch(`(?i)${re2Literal(p.value)}.*`);
      case 'suffix':
        return regexMatch(`(?i).*${re2Literal(p.value)}`);
      case 'contains':
        return regexMatch(`(?i).*${re2Literal(p.value)}.*`);
      default:
        return undefined;
    }
  }
  switch (p.$case) {
    case 'exact':
      return { $case: 'exactMatch', value: p.value };
    case 'prefix':
      return { $case: 'prefixMatch', value: p.value };
    case 'suffix':
      return { $case: 'suffixMatch', value: p.value };
    case 'contains':
      return { $case: 'containsMatch', value: p.value };
    case 'safeRegex':
      return { $case: 'safeRegexMatch', value: p.value };
    default:
      return undefined;
  }
}

/** Rewrites a list, returning undefined when no element changed. */
function mapChanged<T>(items: readonly T[], f: (t: T) => T | undefined): T[] | undefined {
  let changed = false;
  const out = items.map((t) => {
    const u = f(t);
    if (u === undefined) return t;
    changed = true;
    return u;
  });
  return changed ? out : undefined;
}

function legacyHeader(h: HeaderMatcher): HeaderMatcher | undefined {
  if (h.headerMatchSpecifier?.$case !== 'stringMatch') return undefined;
  const spec = legacySpecifier(h.headerMatchSpecifier.value);
  return spec ? { ...h, headerMatchSpecifier: spec } : undefined;
}

function legacyAction(action: RouteAction): RouteAction | undefined {
  const cs = action.clusterSpecifier;
  if (cs?.$case !== 'weightedClusters') return undefined;
  const sum = cs.value.clusters.reduce((s, c) => s + (c.weight ?? 0), 0);
  if (sum === 0 || cs.value.totalWeight === sum) return undefined;
  return { ...action, clusterSpecifier: { $case: 'weightedClusters', value: { ...cs.value, totalWeight: sum } } };
}

/** What a `:method` matcher says of a gRPC call (always POST); undefined when it cannot tell. */
function methodHolds(h: HeaderMatcher): boolean | undefined {
  const spec = h.headerMatchSpecifier;
  let exact: string | undefined;
  if (spec?.$case === 'exactMatch') exact = spec.value;
  else if (spec?.$case === 'stringMatch' && spec.value.matchPattern?.$case === 'exact') {
    exact = spec.value.ignoreCase ? spec.value.matchPattern.value.toUpperCase() : spec.value.matchPattern.value;
  }
  return exact === undefined ? undefined : (exact === 'POST') !== h.invertMatch;
}

/** A route as old gRPC clients take it: undefined when unchanged, null when it never matches a gRPC call. */
function legacyRoute(r: Route): Route | null | undefined {
  let headers: HeaderMatcher[] | undefined;
  if (r.match) {
    const kept: HeaderMatcher[] = [];
    for (const h of r.match.headers) {
      const holds = h.name === ':method' ? methodHolds(h) : undefined;
      if (holds === false) return null;
      if (holds !== true) kept.push(h);
    }
    headers = mapChanged(kept, legacyHeader) ?? (kept.length !== r.match.headers.length ? kept : undefined);
  }
  const action = r.action?.$case === 'route' ? legacyAction(r.action.value) : undefined;
  if (!headers && !action) return undefined;
  return {
    ...r,
    match: headers && r.match ? { ...r.match, headers } : r.match,
    action: action ? { $case: 'route', value: action } : r.action,
  };
}

function legacyVirtualHost(vh: VirtualHost): VirtualHost | undefined {
  const rewritten = vh.routes.map(legacyRoute);
  if (rewritten.every((r) => r === undefined)) return undefined;
  const routes = rewritten.flatMap((r, i) => (r === null ? [] : [r ?? vh.routes[i]!]));
  return { ...vh, routes };
}

const rewritten = new WeakMap<RouteConfiguration, RouteConfiguration>();

/** `rc` as every proxyless gRPC client accepts it: `rc` itself when nothing needs rewriting. */
export function forProxylessClients(rc: RouteConfiguration): RouteConfiguration {
  const known = rewritten.get(rc);
  if (known) return known;
  const virtualHosts = mapChanged(rc.virtualHosts, legacyVirtualHost);
  const out = virtualHosts ? { ...rc, virtualHosts } : rc;
  rewritten.set(rc, out);
  return out;
}
