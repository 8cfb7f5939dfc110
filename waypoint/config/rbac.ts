// envoy.filters.http.rbac: policies of permissions (what is asked) and principals (who asks).
// A request matches a policy when any permission and any principal match. ALLOW: only matching
// requests pass; DENY: matching requests are refused. Principals come from the HBONE peer
// (authenticated = its SPIFFE ID; source_ip/remote_ip = the peer address).
import { isIP } from 'node:net';
import type { CidrRange } from '../../api/gen/envoy/config/core/v3/address';
import { RBAC_Action, type Permission, type Principal, type RBAC as RbacRules } from '../../api/gen/envoy/config/rbac/v3/rbac';
import type { RBAC as RbacFilter } from '../../api/gen/envoy/extensions/filters/http/rbac/v3/rbac';
import type { PathMatcher } from '../../api/gen/envoy/type/matcher/v3/path';
import { ConfigError, within } from './errors';
import { cidrContains, ipBytes, ipToBytes } from '../../common/ip';
import { compileHeaderMatcher, compileStringMatcher, type StringMatch } from './matchers';
import { pathOnly, type RequestView } from './request';

/** Who is asking and where the connection arrived. */
export interface RbacSubject {
  readonly request: RequestView;
  /** SPIFFE ID of the peer (HBONE); undefined for plaintext. */
  readonly principal: string | undefined;
  readonly sourceIp: string;
  readonly destinationIp: string;
  readonly destinationPort: number;
}

type Rule = (s: RbacSubject) => boolean;

export interface RbacEngine {
  readonly action: 'ALLOW' | 'DENY' | 'LOG';
  /** Allowed? and the policy that decided (the matching one, for logs). */
  evaluate(s: RbacSubject): { allowed: boolean; policy: string | undefined };
}

export function compileRbacFilter(f: RbacFilter): RbacEngine | undefined {
  if (f.matcher) throw new ConfigError('rbac matcher (the xDS matcher API) is not supported; use rules');
  return f.rules ? compileRbac(f.rules) : undefined;
}

export function compileRbac(r: RbacRules): RbacEngine {
  const policies: Array<{ name: string; test: Rule }> = [];
  for (const name of Object.keys(r.policies).sort()) {
    const p = r.policies[name]!;
    if (p.condition || p.checkedCondition) throw new ConfigError(`policy ${name}: CEL conditions are not supported`);
    const perms = within(`policy ${name}`, () => p.permissions.map(compilePermission));
    const princs = within(`policy ${name}`, () => p.principals.map(compilePrincipal));
    policies.push({ name, test: (s) => perms.some((t) => t(s)) && princs.some((t) => t(s)) });
  }
  const action = r.action === RBAC_Action.DENY ? 'DENY' : r.action === RBAC_Action.LOG ? 'LOG' : 'ALLOW';
  return {
    action,
    evaluate(s) {
      const hit = policies.find((p) => p.test(s));
      if (action === 'ALLOW') return { allowed: hit !== undefined, policy: hit?.name };
      if (action === 'DENY') return { allowed: hit === undefined, policy: hit?.name };
      return { allowed: true, policy: hit?.name };
    },
  };
}

function compilePathMatcher(m: PathMatcher): StringMatch {
  if (m.rule?.$case !== 'path') throw new ConfigError('url_path matcher has no path');
  return compileStringMatcher(m.rule.value);
}

function compilePermission(p: Permission): Rule {
  const r = p.rule;
  if (!r) throw new ConfigError('permission has no rule');
  switch (r.$case) {
    case 'any':
      return () => true;
    case 'andRules': {
      const rules = r.value.rules.map(compilePermission);
      return (s) => rules.every((t) => t(s));
    }
    case 'orRules': {
      const rules = r.value.rules.map(compilePermission);
      return (s) => rules.some((t) => t(s));
    }
    case 'notRule': {
      const inner = compilePermission(r.value);
      return (s) => !inner(s);
    }
    case 'header': {
      const m = compileHeaderMatcher(r.value);
      return (s) => m(s.request);
    }
    case 'urlPath': {
      const m = compilePathMatcher(r.value);
      return (s) => m(pathOnly(s.request.path));
    }
    case 'destinationPort': {
      const port = r.value;
      return (s) => s.destinationPort === port;
    }
    case 'destinationPortRange': {
      const { start, end } = r.value;
      return (s) => s.destinationPort >= start && s.destinationPort < end;
    }
    case 'destinationIp': {
      const m = compileCidr(r.value);
      return (s) => m(s.destinationIp);
    }
    default:
      throw new ConfigError(`permission ${r.$case} is not supported by the nodemesh waypoint`);
  }
}

function compilePrincipal(p: Principal): Rule {
  const id = p.identifier;
  if (!id) throw new ConfigError('principal has no identifier');
  switch (id.$case) {
    case 'any':
      return () => true;
    case 'andIds': {
      const ids = id.value.ids.map(compilePrincipal);
      return (s) => ids.every((t) => t(s));
    }
    case 'orIds': {
      const ids = id.value.ids.map(compilePrincipal);
      return (s) => ids.some((t) => t(s));
    }
    case 'notId': {
      const inner = compilePrincipal(id.value);
      return (s) => !inner(s);
    }
    case 'authenticated': {
      // No principal_name: any authenticated peer.
      if (!id.value.principalName) return (s) => s.principal !== undefined;
      const m = compileStringMatcher(id.value.principalName);
      return (s) => s.principal !== undefined && m(s.principal);
    }
    case 'sourceIp':
    case 'directRemoteIp':
    case 'remoteIp': {
      const m = compileCidr(id.value);
      return (s) => m(s.sourceIp);
    }
    case 'header': {
      const m = compileHeaderMatcher(id.value);
      return (s) => m(s.request);
    }
    case 'urlPath': {
      const m = compilePathMatcher(id.value);
      return (s) => m(pathOnly(s.request.path));
    }
    default:
      throw new ConfigError(`principal ${id.$case} is not supported by the nodemesh waypoint`);
  }
}

/** CIDR membership for IPv4 and IPv6 (IPv4-mapped IPv6 addresses count as IPv4). */
export function compileCidr(c: CidrRange): (ip: string) => boolean {
  const family = isIP(c.addressPrefix);
  if (!family) throw new ConfigError(`cidr ${c.addressPrefix} is not an IP address`);
  const bits = family === 4 ? 32 : 128;
  const len = c.prefixLen ?? bits;
  if (len < 0 || len > bits) throw new ConfigError(`cidr prefix_len ${len} is out of range for ${c.addressPrefix}`);
  const range = { address: ipBytes(c.addressPrefix), length: len };
  return (ip) => cidrContains(range, ipToBytes(ip));
}
