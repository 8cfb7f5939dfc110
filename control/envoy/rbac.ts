// AuthorizationPolicy -> the Envoy RBAC HTTP filter (envoy.filters.http.rbac) of a waypoint.
//
// Which policies a Service's waypoint enforces: those whose targetRefs name the Service, or the
// waypoint Gateway itself (all its Services). Selector policies are the node proxy's (L4).
//
// Shape, as Istio's: each policy rule becomes one Envoy policy `ns.name[i]`; `from` sources become
// principals (OR of sources, AND inside one), `to` operations become permissions (likewise), and
// `when` conditions are ANDed to the side they concern. DENY policies go into a DENY filter placed
// before the ALLOW filter, so DENY wins; with no ALLOW policy there is no ALLOW filter and
// everything not denied is allowed; ALLOW policies whose rules are all unusable still produce an
// ALLOW filter with no policy — it denies everything, as the user asked for an allow-list.
// What a waypoint cannot check (request principals / JWT, unknown `when` keys): an ALLOW rule
// needing it is dropped (it can never match), a DENY rule ignores it (denies more: fail closed).
import { RBAC_Action, type Permission, type Policy, type Principal } from '../../api/gen/envoy/config/rbac/v3/rbac';
import { RBAC } from '../../api/gen/envoy/extensions/filters/http/rbac/v3/rbac';
import type { StringMatcher } from '../../api/gen/envoy/type/matcher/v3/string';
import { parseCidr } from '../../common/ip';
import type { AuthorizationPolicy, Condition, Operation, Rule, Source } from '../resources';
import type { MeshIndex, ServiceInfo } from './model';
import type { DeepPartial } from './proto';

/** The policies a waypoint enforces for one Service, sorted by namespace/name. */
export function policiesFor(index: MeshIndex, svc: ServiceInfo): AuthorizationPolicy[] {
  const [gwNs, gwName] = (svc.waypoint ?? '/').split('/');
  return index.snapshot.list('AuthorizationPolicy').filter((p) => {
    const pNs = p.metadata.namespace ?? '';
    return (p.spec.targetRefs ?? []).some((ref) => {
      const ns = ref.namespace ?? pNs;
      if (ref.kind === 'Service') return ns === svc.namespace && ref.name === svc.name;
      return svc.waypoint !== undefined && ns === gwNs && ref.name === gwName;
    });
  });
}

/**
 * RBAC filter configs in chain order (DENY first, then ALLOW); empty when no policy applies.
 * `tcp`: for a TCP port (network RBAC filter), where HTTP attributes cannot be checked.
 */
export function translateRbac(index: MeshIndex, policies: readonly AuthorizationPolicy[], tcp = false): RBAC[] {
  const filters: RBAC[] = [];
  for (const action of ['DENY', 'ALLOW'] as const) {
    const chosen = policies.filter((p) => p.spec.action === action);
    if (chosen.length === 0) continue;
    const envoyPolicies: Record<string, DeepPartial<Policy>> = {};
    for (const p of chosen) {
      (p.spec.rules ?? []).forEach((rule, i) => {
        const translated = translateRule(index, p, rule, action, tcp);
        if (translated) envoyPolicies[`${p.metadata.namespace ?? ''}.${p.metadata.name}[${i}]`] = translated;
      });
    }
    filters.push(
      RBAC.fromPartial({
        rules: { action: action === 'DENY' ? RBAC_Action.DENY : RBAC_Action.ALLOW, policies: envoyPolicies },
        rulesStatPrefix: action === 'DENY' ? 'deny_' : 'allow_',
      }),
    );
  }
  return filters;
}

class Unusable extends Error {}

function translateRule(index: MeshIndex, p: AuthorizationPolicy, rule: Rule, action: 'ALLOW' | 'DENY', tcp: boolean): DeepPartial<Policy> | undefined {
  const who = `AuthorizationPolicy ${p.metadata.namespace ?? ''}/${p.metadata.name}`;
  const ctx: Ctx = { index, who, action, trustDomain: index.options.trustDomain, tcp };
  try {
    const principalSets = (rule.from ?? []).map((f) => source(ctx, f.source)).filter((x): x is DeepPartial<Principal> => x !== undefined);
    const permissionSets = (rule.to ?? []).map((t) => operation(ctx, t.operation)).filter((x): x is DeepPartial<Permission> => x !== undefined);
    const whenPrincipals: DeepPartial<Principal>[] = [];
    const whenPermissions: DeepPartial<Permission>[] = [];
    for (const c of rule.when ?? []) condition(ctx, c, whenPrincipals, whenPermissions);
    const principals = andPrincipals([...(principalSets.length ? [orPrincipals(principalSets)] : []), ...whenPrincipals]);
    const permissions = andPermissions([...(permissionSets.length ? [orPermissions(permissionSets)] : []), ...whenPermissions]);
    return { principals: [principals], permissions: [permissions] };
  } catch (err) {
    if (!(err instanceof Unusable)) throw err;
    index.warnings.push(`${who}: an ALLOW rule needs ${err.message}, which cannot be checked here; the rule is left out (it can never match)`);
    return undefined;
  }
}

interface Ctx {
  readonly index: MeshIndex;
  readonly who: string;
  readonly action: 'ALLOW' | 'DENY';
  readonly trustDomain: string;
  readonly tcp: boolean;
}

/** A field the waypoint cannot evaluate: ALLOW rules are dropped, DENY rules ignore the field. */
function cannotCheck(ctx: Ctx, what: string): undefined {
  if (ctx.action === 'ALLOW') throw new Unusable(what);
  ctx.index.warnings.push(`${ctx.who}: ${what} cannot be checked here; the DENY rule ignores it and denies more`);
  return undefined;
}

/** Istio match string (exact, "*", "prefix*", "*suffix") -> StringMatcher. */
function stringMatch(value: string, prefix = '', ignoreCase = false): DeepPartial<StringMatcher> {
  if (value === '*') return { matchPattern: { $case: 'safeRegex', value: { regex: `^${escapeRegex(prefix)}.+$` } }, ignoreCase };
  if (value.endsWith('*')) return { matchPattern: { $case: 'prefix', value: prefix + value.slice(0, -1) }, ignoreCase };
  if (value.startsWith('*')) {
    return prefix
      ? { matchPattern: { $case: 'safeRegex', value: { regex: `^${escapeRegex(prefix)}.*${escapeRegex(value.slice(1))}$` } }, ignoreCase }
      : { matchPattern: { $case: 'suffix', value: value.slice(1) }, ignoreCase };
  }
  return { matchPattern: { $case: 'exact', value: prefix + value }, ignoreCase };
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const principalName = (v: string): DeepPartial<Principal> => ({
  identifier: { $case: 'authenticated', value: { principalName: stringMatch(v, 'spiffe://') } },
});

function namespacePrincipal(ns: string): DeepPartial<Principal> {
  // spiffe://<trust domain>/ns/<namespace>/sa/<service account>
  const nsPattern =
    ns === '*'
      ? '[^/]+'
      : ns.endsWith('*')
        ? `${escapeRegex(ns.slice(0, -1))}[^/]*`
        : ns.startsWith('*')
          ? `[^/]*${escapeRegex(ns.slice(1))}`
          : escapeRegex(ns);
  return {
    identifier: {
      $case: 'authenticated',
      value: { principalName: { matchPattern: { $case: 'safeRegex', value: { regex: `^spiffe://[^/]+/ns/${nsPattern}/.*$` } } } },
    },
  };
}

/** An ipBlocks entry (validated by the resource schema) as Envoy's CidrRange: the address as written, a bare one as /32 or /128. */
function cidr(value: string): { addressPrefix: string; prefixLen: number } {
  return { addressPrefix: value.split('/')[0]!, prefixLen: parseCidr(value).length };
}

function source(ctx: Ctx, s: Source): DeepPartial<Principal> | undefined {
  const parts: DeepPartial<Principal>[] = [];
  const add = (values: string[] | undefined, f: (v: string) => DeepPartial<Principal>, negate = false) => {
    if (!values) return;
    const set = orPrincipals(values.map(f));
    parts.push(negate ? { identifier: { $case: 'notId', value: set } } : set);
  };
  add(s.principals, principalName);
  add(s.notPrincipals, principalName, true);
  add(s.namespaces, namespacePrincipal);
  add(s.notNamespaces, namespacePrincipal, true);
  add(s.ipBlocks, (v) => ({ identifier: { $case: 'directRemoteIp', value: cidr(v) } }));
  add(s.notIpBlocks, (v) => ({ identifier: { $case: 'directRemoteIp', value: cidr(v) } }), true);
  add(s.remoteIpBlocks, (v) => ({ identifier: { $case: 'remoteIp', value: cidr(v) } }));
  add(s.notRemoteIpBlocks, (v) => ({ identifier: { $case: 'remoteIp', value: cidr(v) } }), true);
  if (s.requestPrincipals || s.notRequestPrincipals) cannotCheck(ctx, 'requestPrincipals (JWT)');
  return parts.length ? andPrincipals(parts) : { identifier: { $case: 'any', value: true } };
}

const headerPermission = (name: string, m: DeepPartial<StringMatcher>): DeepPartial<Permission> => ({
  rule: { $case: 'header', value: { name, headerMatchSpecifier: { $case: 'stringMatch', value: m } } },
});

function operation(ctx: Ctx, o: Operation): DeepPartial<Permission> | undefined {
  const parts: DeepPartial<Permission>[] = [];
  if (ctx.tcp && (o.hosts || o.notHosts || o.methods || o.notMethods || o.paths || o.notPaths)) {
    cannotCheck(ctx, 'HTTP attributes (hosts, methods, paths) on a TCP port');
    o = { ports: o.ports, notPorts: o.notPorts };
  }
  const add = (values: string[] | undefined, f: (v: string) => DeepPartial<Permission>, negate = false) => {
    if (!values) return;
    const set = orPermissions(values.map(f));
    parts.push(negate ? { rule: { $case: 'notRule', value: set } } : set);
  };
  const host = (v: string) => headerPermission(':authority', stringMatch(v, '', true));
  const method = (v: string) => headerPermission(':method', stringMatch(v));
  const path = (v: string): DeepPartial<Permission> => ({ rule: { $case: 'urlPath', value: { rule: { $case: 'path', value: stringMatch(v) } } } });
  const port = (v: string): DeepPartial<Permission> => ({ rule: { $case: 'destinationPort', value: Number(v) } });
  add(o.hosts, host);
  add(o.notHosts, host, true);
  add(o.methods, method);
  add(o.notMethods, method, true);
  add(o.paths, path);
  add(o.notPaths, path, true);
  add(o.ports, port);
  add(o.notPorts, port, true);
  return parts.length ? andPermissions(parts) : { rule: { $case: 'any', value: true } };
}

function condition(ctx: Ctx, c: Condition, principals: DeepPartial<Principal>[], permissions: DeepPartial<Permission>[]): void {
  const header = /^request\.headers\[(.+)\]$/.exec(c.key);
  const values = c.values;
  const notValues = c.notValues;
  const principal = (f: (v: string) => DeepPartial<Principal>) => {
    if (values) principals.push(orPrincipals(values.map(f)));
    if (notValues) principals.push({ identifier: { $case: 'notId', value: orPrincipals(notValues.map(f)) } });
  };
  const permission = (f: (v: string) => DeepPartial<Permission>) => {
    if (values) permissions.push(orPermissions(values.map(f)));
    if (notValues) permissions.push({ rule: { $case: 'notRule', value: orPermissions(notValues.map(f)) } });
  };
  if (header) {
    if (ctx.tcp) return cannotCheck(ctx, `the condition ${c.key} on a TCP port`);
    return permission((v) => headerPermission(header[1]!.toLowerCase(), stringMatch(v)));
  }
  switch (c.key) {
    case 'source.ip':
      return principal((v) => ({ identifier: { $case: 'directRemoteIp', value: cidr(v) } }));
    case 'remote.ip':
      return principal((v) => ({ identifier: { $case: 'remoteIp', value: cidr(v) } }));
    case 'source.namespace':
      return principal(namespacePrincipal);
    case 'source.principal':
      return principal(principalName);
    case 'destination.ip':
      return permission((v) => ({ rule: { $case: 'destinationIp', value: cidr(v) } }));
    case 'destination.port':
      return permission((v) => ({ rule: { $case: 'destinationPort', value: Number(v) } }));
    default:
      cannotCheck(ctx, `the condition ${c.key}`);
  }
}

function orPrincipals(ids: DeepPartial<Principal>[]): DeepPartial<Principal> {
  return ids.length === 1 ? ids[0]! : { identifier: { $case: 'orIds', value: { ids } } };
}
function andPrincipals(ids: DeepPartial<Principal>[]): DeepPartial<Principal> {
  if (ids.length === 0) return { identifier: { $case: 'any', value: true } };
  return ids.length === 1 ? ids[0]! : { identifier: { $case: 'andIds', value: { ids } } };
}
function orPermissions(rules: DeepPartial<Permission>[]): DeepPartial<Permission> {
  return rules.length === 1 ? rules[0]! : { rule: { $case: 'orRules', value: { rules } } };
}
function andPermissions(rules: DeepPartial<Permission>[]): DeepPartial<Permission> {
  if (rules.length === 0) return { rule: { $case: 'any', value: true } };
  return rules.length === 1 ? rules[0]! : { rule: { $case: 'andRules', value: { rules } } };
}
