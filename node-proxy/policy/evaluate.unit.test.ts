import { describe, expect, it } from 'vitest';
import { Authorization, AuthorizationAction, AuthorizationScope, Clause, Match, Rule } from '../../api/gen/nodemesh/workload/v1/workload';
import { cidrOf } from '../../control/workload/addresses';
import { unenforcedTargetRefAttribute } from '../../control/workload/target-refs';
import { stringMatch } from '../../control/workload/translate';
import { evaluate } from './evaluate';
import type { PolicyAuthorization, PolicyConnection, PolicyContext, PolicyRule } from './model';
import { effectivePeerAuthentication, type PeerAuthenticationPolicy } from './peer-authentication';
import { connectionsNoLongerAllowed } from './revalidate';

// Sources: A (frontend/web, 10.200.1.5), B (backend/api, 10.200.2.5), plaintext (10.200.1.9).
const A = 'spiffe://cluster.local/ns/frontend/sa/web';
const B = 'spiffe://cluster.local/ns/backend/sa/api';
const SOURCES: Array<{ identity?: string; ip: string }> = [{ identity: A, ip: '10.200.1.5' }, { identity: B, ip: '10.200.2.5' }, { ip: '10.200.1.9' }];
const PORTS = [8080, 9090];

type MatchInit = Parameters<typeof Match.fromPartial>[0];
/** One rule: `from` and `to` are separate clauses (both must match), as the translation builds them. */
function rule(from?: MatchInit, to?: MatchInit, l7Attributes?: string[]): PolicyRule {
  const clauses = [from, to].filter((m): m is MatchInit => m !== undefined).map((m) => Clause.fromPartial({ matches: [m] }));
  return { ...Rule.fromPartial({ clauses }), l7Attributes };
}
function policy(name: string, action: 'ALLOW' | 'DENY', rules: PolicyRule[]): PolicyAuthorization {
  return {
    ...Authorization.fromPartial({
      name,
      namespace: 'default',
      scope: AuthorizationScope.AUTHORIZATION_SCOPE_WORKLOAD_SELECTOR,
      action: action === 'ALLOW' ? AuthorizationAction.AUTHORIZATION_ACTION_ALLOW : AuthorizationAction.AUTHORIZATION_ACTION_DENY,
    }),
    rules,
  };
}
const str = (...xs: string[]) => xs.map(stringMatch);
const cidr = (...xs: string[]) => xs.map(cidrOf);

function context(authorizations: PolicyAuthorization[], mode: 'STRICT' | 'PERMISSIVE' = 'PERMISSIVE', hasWaypoint = false): PolicyContext {
  return {
    destination: 'default/db',
    authorizations,
    peerAuthentication: mode === 'STRICT' ? { mode, policy: 'default/strict' } : { mode },
    hasWaypoint,
  };
}
const conn = (s: { identity?: string; ip: string }, port: number): PolicyConnection => ({
  sourceIdentity: s.identity,
  sourceIp: s.ip,
  destinationIp: '10.200.3.7',
  destinationPort: port,
});

/** Verdicts in the order A:8080 A:9090 B:8080 B:9090 plain:8080 plain:9090, 'A' allow / 'D' deny. */
function row(ctx: PolicyContext): string {
  return SOURCES.flatMap((s) => PORTS.map((p) => (evaluate(conn(s, p), ctx).allowed ? 'A' : 'D'))).join('');
}

// Each rule with the expected row when it is the only ALLOW policy, and when it is the only DENY.
const MATRIX: Array<[string, PolicyRule[], string, string]> = [
  ['principals [A]', [rule({ principals: str('cluster.local/ns/frontend/sa/web') })], 'AADDDD', 'DDAAAA'],
  ['namespaces [frontend]', [rule({ namespaces: str('frontend') })], 'AADDDD', 'DDAAAA'],
  ['namespaces prefix front*', [rule({ namespaces: str('front*') })], 'AADDDD', 'DDAAAA'],
  ['principals suffix */sa/api', [rule({ principals: str('*/sa/api') })], 'DDAADD', 'AADDAA'],
  ['principals presence *', [rule({ principals: str('*') })], 'AAAADD', 'DDDDAA'],
  ['notPrincipals [A]', [rule({ notPrincipals: str('cluster.local/ns/frontend/sa/web') })], 'DDAAAA', 'AADDDD'],
  ['notPrincipals presence * (plaintext only)', [rule({ notPrincipals: str('*') })], 'DDDDAA', 'AAAADD'],
  ['notNamespaces [frontend]', [rule({ notNamespaces: str('frontend') })], 'DDAAAA', 'AADDDD'],
  ['ports [8080]', [rule(undefined, { destinationPorts: [8080] })], 'ADADAD', 'DADADA'],
  ['notPorts [8080]', [rule(undefined, { notDestinationPorts: [8080] })], 'DADADA', 'ADADAD'],
  ['principals [A] and ports [8080]', [rule({ principals: str('cluster.local/ns/frontend/sa/web') }, { destinationPorts: [8080] })], 'ADDDDD', 'DAAAAA'],
  ['namespaces [backend] and notPorts [8080]', [rule({ namespaces: str('backend') }, { notDestinationPorts: [8080] })], 'DDDADD', 'AAADAA'],
  ['ipBlocks 10.200.1.0/24', [rule({ sourceIps: cidr('10.200.1.0/24') })], 'AADDAA', 'DDAADD'],
  ['notIpBlocks 10.200.1.5', [rule({ notSourceIps: cidr('10.200.1.5') })], 'DDAAAA', 'AADDDD'],
  [
    'two rules: principals [A] or ports [9090]',
    [rule({ principals: str('cluster.local/ns/frontend/sa/web') }), rule(undefined, { destinationPorts: [9090] })],
    'AADADA',
    'DDADAD',
  ],
  ['an empty rule (matches everything)', [rule()], 'AAAAAA', 'DDDDDD'],
  ['no rules (matches nothing)', [], 'DDDDDD', 'AAAAAA'],
];

describe('AuthorizationPolicy at L4: principals × namespaces × ports × ALLOW/DENY', () => {
  it.each(MATRIX)('%s', (_name, rules, allowRow, denyRow) => {
    expect(row(context([policy('p', 'ALLOW', rules)]))).toBe(allowRow);
    expect(row(context([policy('p', 'DENY', rules)]))).toBe(denyRow);
  });

  it('allows everything when no policy applies', () => {
    expect(row(context([]))).toBe('AAAAAA');
    expect(evaluate(conn(SOURCES[0]!, 8080), context([]))).toEqual({ allowed: true, reason: 'no ALLOW policy applies to default/db' });
  });

  it('DENY wins over ALLOW, and names the policy that decided', () => {
    const ctx = context([
      policy('allow-frontend', 'ALLOW', [rule({ namespaces: str('frontend') })]),
      policy('deny-9090', 'DENY', [rule(undefined, { destinationPorts: [9090] })]),
    ]);
    expect(row(ctx)).toBe('ADDDDD');
    expect(evaluate(conn(SOURCES[0]!, 8080), ctx)).toEqual({
      allowed: true,
      policy: 'default/allow-frontend',
      rule: 1,
      reason: 'allowed by ALLOW policy default/allow-frontend (rule 1)',
    });
    expect(evaluate(conn(SOURCES[0]!, 9090), ctx)).toEqual({
      allowed: false,
      policy: 'default/deny-9090',
      rule: 1,
      reason: 'denied by DENY policy default/deny-9090 (rule 1)',
    });
    const b = evaluate(conn(SOURCES[1]!, 8080), ctx);
    expect(b.allowed).toBe(false);
    expect(b.policy).toBeUndefined();
    expect(b.reason).toMatch(/no ALLOW policy matched .*allow-frontend/);
  });

  it('any one of several ALLOW policies is enough', () => {
    const ctx = context([
      policy('allow-a', 'ALLOW', [rule({ principals: str('cluster.local/ns/frontend/sa/web') })]),
      policy('allow-plain-8080', 'ALLOW', [rule({ notPrincipals: str('*') }, { destinationPorts: [8080] })]),
    ]);
    expect(row(ctx)).toBe('AADDAD');
  });

  it('matches IPv6 sources and IPv4-mapped addresses against IPv4 blocks', () => {
    const ctx = context([policy('v6', 'ALLOW', [rule({ sourceIps: cidr('fd00:200::/32', '10.200.1.0/24') })])]);
    const at = (ip: string) => evaluate({ sourceIp: ip, destinationIp: '10.200.3.7', destinationPort: 80 }, ctx).allowed;
    expect(at('fd00:200::5')).toBe(true);
    expect(at('fd00:201::5')).toBe(false);
    expect(at('::ffff:10.200.1.77')).toBe(true);
    expect(at('10.200.2.1')).toBe(false);
  });
});

describe('PeerAuthentication', () => {
  it('STRICT refuses plaintext, with the policy and a reason; PERMISSIVE lets it through to AuthorizationPolicy', () => {
    expect(row(context([], 'STRICT'))).toBe('AAAADD');
    expect(row(context([], 'PERMISSIVE'))).toBe('AAAAAA');
    const v = evaluate(conn(SOURCES[2]!, 8080), context([], 'STRICT'));
    expect(v).toMatchObject({ allowed: false, policy: 'default/strict' });
    expect(v.reason).toMatch(/requires mutual TLS \(STRICT\).*plaintext/);
    // PERMISSIVE applies policy without an identity: identity-based ALLOW refuses plaintext.
    expect(row(context([policy('ns', 'ALLOW', [rule({ namespaces: str('frontend') })])], 'PERMISSIVE'))).toBe('AADDDD');
    // ... and an IP-based ALLOW admits it.
    expect(row(context([policy('ip', 'ALLOW', [rule({ sourceIps: cidr('10.200.1.9/32') })])], 'PERMISSIVE'))).toBe('DDDDAA');
    expect(row(context([policy('ip', 'ALLOW', [rule({ sourceIps: cidr('10.200.1.9/32') })])], 'STRICT'))).toBe('DDDDDD');
  });

  it('resolves the mode: port level, workload, namespace, mesh, default PERMISSIVE; UNSET inherits', () => {
    const target = { uid: 'Workload/default/db', namespace: 'default' };
    const mesh: PeerAuthenticationPolicy = { name: 'mesh', namespace: 'nodemesh-system', scope: 'mesh', mode: 'STRICT' };
    const ns: PeerAuthenticationPolicy = { name: 'ns', namespace: 'default', scope: 'namespace', mode: 'PERMISSIVE' };
    const wl: PeerAuthenticationPolicy = {
      name: 'db',
      namespace: 'default',
      scope: 'workload',
      workloads: ['Workload/default/db'],
      mode: 'UNSET',
      portLevel: { 5432: 'STRICT' },
    };
    expect(effectivePeerAuthentication([], target, 5432)).toEqual({ mode: 'PERMISSIVE' });
    expect(effectivePeerAuthentication([mesh], target, 80)).toEqual({ mode: 'STRICT', policy: 'nodemesh-system/mesh' });
    expect(effectivePeerAuthentication([mesh, ns], target, 80)).toEqual({ mode: 'PERMISSIVE', policy: 'default/ns' });
    expect(effectivePeerAuthentication([mesh, ns, wl], target, 5432)).toEqual({ mode: 'STRICT', policy: 'default/db' });
    expect(effectivePeerAuthentication([mesh, ns, wl], target, 80)).toEqual({ mode: 'PERMISSIVE', policy: 'default/ns' });
    expect(effectivePeerAuthentication([mesh, { ...ns, mode: 'UNSET' }], target, 80)).toEqual({ mode: 'STRICT', policy: 'nodemesh-system/mesh' });
    // A namespace policy elsewhere, or a workload policy for another workload, does not apply.
    expect(
      effectivePeerAuthentication(
        [
          { ...ns, namespace: 'other', mode: 'STRICT' },
          { ...wl, workloads: ['Workload/default/x'] },
        ],
        target,
        5432,
      ),
    ).toEqual({ mode: 'PERMISSIVE' });
  });
});

describe('rules with L7 attributes', () => {
  const getOnly = policy('get-only', 'ALLOW', [rule({ namespaces: str('frontend') }, undefined, ['methods'])]);

  it('an ALLOW rule that needs L7 cannot match without a waypoint: denied, saying so', () => {
    const v = evaluate(conn(SOURCES[0]!, 8080), context([getOnly]));
    expect(v.allowed).toBe(false);
    expect(v.policy).toBe('default/get-only');
    expect(v.reason).toMatch(/default\/get-only rule 1 needs L7 attributes \[methods\].*default\/db has no waypoint/);
    // Another L4 rule still allows.
    const withL4 = policy('get-only', 'ALLOW', [...getOnly.rules, rule({ principals: str('cluster.local/ns/frontend/sa/web') })]);
    expect(evaluate(conn(SOURCES[0]!, 8080), context([withL4]))).toMatchObject({ allowed: true, reason: 'allowed by ALLOW policy default/get-only (rule 2)' });
  });

  it('with a waypoint too, an ALLOW rule that needs L7 never matches at the node proxy (waypoints enforce only targetRefs policies)', () => {
    expect(row(context([getOnly], 'PERMISSIVE', true))).toBe('DDDDDD');
    const v = evaluate(conn(SOURCES[0]!, 8080), context([getOnly], 'PERMISSIVE', true));
    expect(v).toMatchObject({ allowed: false, policy: 'default/get-only' });
    expect(v.reason).toMatch(
      /default\/db has a waypoint, but a waypoint enforces only AuthorizationPolicies whose targetRefs name its Service or Gateway.*move the rule to a policy with targetRefs/,
    );
  });

  it('a DENY rule that needs L7 is enforced on its L4 part (fail closed)', () => {
    const denyPosts = policy('deny-post', 'DENY', [rule({ namespaces: str('backend') }, undefined, ['methods', 'paths'])]);
    expect(row(context([denyPosts]))).toBe('AADDAA');
    expect(evaluate(conn(SOURCES[1]!, 8080), context([denyPosts])).reason).toMatch(
      /names L7 attributes \[methods, paths\], which only a waypoint can check.*fail closed/,
    );
  });
});

describe('targetRefs policy on a Service without a waypoint', () => {
  // As control/workload publishes it: DENY, one empty rule, the unenforced Services named.
  const unenforced = policy('web-get', 'DENY', [rule(undefined, undefined, [unenforcedTargetRefAttribute('default', 'web')])]);

  it('refuses every connection, whatever else allows it, naming the policy and the Service and saying what to do', () => {
    expect(row(context([unenforced]))).toBe('DDDDDD');
    const allowA = policy('allow-a', 'ALLOW', [rule({ principals: str('cluster.local/ns/frontend/sa/web') })]);
    expect(row(context([allowA, unenforced]))).toBe('DDDDDD');
    const v = evaluate(conn(SOURCES[0]!, 8080), context([allowA, unenforced]));
    expect(v).toEqual({
      allowed: false,
      policy: 'default/web-get',
      reason:
        'denied by AuthorizationPolicy default/web-get: it targets Service/default/web (targetRefs), which has no usable waypoint, and only a waypoint enforces ' +
        'targetRefs policies; rather than let nobody enforce it, default/db refuses every connection (fail closed); ' +
        'attach a waypoint to the Service (nodemesh.io/use-waypoint) or select the workloads with spec.selector instead of targetRefs',
    });
    // Every targeted Service without a waypoint is named.
    const two = policy('two', 'DENY', [
      rule(undefined, undefined, [unenforcedTargetRefAttribute('default', 'db'), unenforcedTargetRefAttribute('default', 'web')]),
    ]);
    expect(evaluate(conn(SOURCES[2]!, 9090), context([two])).reason).toMatch(/targets Service\/default\/db, Service\/default\/web \(targetRefs\)/);
  });

  it('is the only kind of L7 attribute read as such: other DENY rules keep their L4 reason', () => {
    const denyPaths = policy('deny-paths', 'DENY', [rule(undefined, undefined, ['paths'])]);
    expect(evaluate(conn(SOURCES[0]!, 8080), context([denyPaths])).reason).toMatch(
      /^denied by DENY policy default\/deny-paths \(rule 1\); the rule also names L7 attributes \[paths\]/,
    );
  });
});

describe('connectionsNoLongerAllowed', () => {
  it('returns the open connections a new policy set refuses, with the verdict', () => {
    const open = SOURCES.flatMap((s, i) => PORTS.map((p, j) => ({ id: `${i}-${j}`, destination: 'Workload/default/db', connection: conn(s, p) })));
    open.push({ id: 'other', destination: 'Workload/default/gone', connection: conn(SOURCES[2]!, 8080) });
    const before = context([]);
    expect(connectionsNoLongerAllowed(open, (uid) => (uid === 'Workload/default/db' ? before : undefined))).toEqual([]);
    const after = context([policy('frontend-only', 'ALLOW', [rule({ namespaces: str('frontend') })])], 'STRICT');
    const closing = connectionsNoLongerAllowed(open, (uid) => (uid === 'Workload/default/db' ? after : undefined));
    expect(closing.map((c) => c.id)).toEqual(['1-0', '1-1', '2-0', '2-1']);
    expect(closing[0]!.verdict.reason).toMatch(/no ALLOW policy matched/);
    expect(closing[2]!.verdict.reason).toMatch(/STRICT/);
  });
});
