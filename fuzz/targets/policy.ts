// The node proxy's L4 policy evaluator against a small reference model written from the rules in
// docs/policy.md (Istio semantics) rather than from evaluate.ts: its own SPIFFE parsing, string
// matching and IPv4 CIDR arithmetic. Both must agree on allowed/denied for every connection and
// set of policies over a small universe (so matches and misses are both frequent).
import fc from 'fast-check';
import {
  AuthorizationAction,
  AuthorizationScope,
  type CidrRange,
  type Clause,
  type Match,
  type StringMatch,
} from '../../api/gen/nodemesh/workload/v1/workload';
import { evaluate } from '../../node-proxy/policy/evaluate';
import type { PolicyAuthorization, PolicyConnection, PolicyContext, PolicyRule } from '../../node-proxy/policy/model';
import { target } from '../target';

// ---- the reference model ---------------------------------------------------------------------

interface RefFacts {
  readonly principal?: string;
  readonly namespace?: string;
  readonly src: number;
  readonly dst: number;
  readonly port: number;
}

const v4 = (ip: string): number => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
const v4Bytes = (b: Uint8Array): number => ((b[0]! * 256 + b[1]!) * 256 + b[2]!) * 256 + b[3]!;

function refString(m: StringMatch, v: string | undefined): boolean {
  if (!v) return false;
  const t = m.matchType;
  if (!t) return false;
  if (t.$case === 'presence') return true;
  if (t.$case === 'exact') return v === t.value;
  if (t.$case === 'prefix') return v.slice(0, t.value.length) === t.value;
  return t.value.length <= v.length && v.slice(v.length - t.value.length) === t.value;
}

function refCidr(c: CidrRange, ip: number): boolean {
  const size = 2 ** (32 - Math.min(32, c.length));
  return Math.floor(v4Bytes(c.address) / size) === Math.floor(ip / size);
}

const any = <T, V>(list: readonly T[], v: V, f: (x: T, v: V) => boolean): boolean => list.some((x) => f(x, v));
const pos = <T, V>(list: readonly T[], v: V, f: (x: T, v: V) => boolean): boolean => list.length === 0 || any(list, v, f);
const neg = <T, V>(list: readonly T[], v: V, f: (x: T, v: V) => boolean): boolean => list.length === 0 || !any(list, v, f);

function refMatch(m: Match, f: RefFacts): boolean {
  return (
    pos(m.principals, f.principal, refString) &&
    neg(m.notPrincipals, f.principal, refString) &&
    pos(m.namespaces, f.namespace, refString) &&
    neg(m.notNamespaces, f.namespace, refString) &&
    pos(m.sourceIps, f.src, refCidr) &&
    neg(m.notSourceIps, f.src, refCidr) &&
    pos(m.destinationIps, f.dst, refCidr) &&
    neg(m.notDestinationIps, f.dst, refCidr) &&
    pos(m.destinationPorts, f.port, (a, b) => a === b) &&
    neg(m.notDestinationPorts, f.port, (a, b) => a === b)
  );
}

const refRule = (r: PolicyRule, f: RefFacts): boolean => r.clauses.every((c) => c.matches.some((m) => refMatch(m, f)));

export function referenceAllows(c: PolicyConnection, ctx: PolicyContext): boolean {
  const id = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(c.sourceIdentity ?? '');
  const f: RefFacts = {
    principal: id ? c.sourceIdentity!.slice('spiffe://'.length) : undefined,
    namespace: id?.[2],
    src: v4(c.sourceIp),
    dst: v4(c.destinationIp),
    port: c.destinationPort,
  };
  if (ctx.peerAuthentication.mode === 'STRICT' && !c.sourceIdentity) return false;
  const of = (a: AuthorizationAction) => ctx.authorizations.filter((p) => p.action === a);
  // DENY wins, on a rule's L4 part even when it also named L7 attributes (fail closed)
  if (of(AuthorizationAction.AUTHORIZATION_ACTION_DENY).some((p) => p.rules.some((r) => refRule(r, f)))) return false;
  const allows = of(AuthorizationAction.AUTHORIZATION_ACTION_ALLOW);
  if (allows.length === 0) return true;
  // an ALLOW rule that needs L7 attributes cannot match at L4
  return allows.some((p) => p.rules.some((r) => (r.l7Attributes ?? []).length === 0 && refRule(r, f)));
}

// ---- inputs ----------------------------------------------------------------------------------

const IPS = ['10.200.1.5', '10.200.1.9', '10.200.2.7', '10.0.0.1', '192.168.1.1'];
const strMatch: fc.Arbitrary<StringMatch> = fc
  .oneof(
    fc.record({
      $case: fc.constant('exact' as const),
      value: fc.constantFrom('cluster.local/ns/a/sa/web', 'cluster.local/ns/b/sa/db', 'a', 'b', 'other/ns/a/sa/web'),
    }),
    fc.record({ $case: fc.constant('prefix' as const), value: fc.constantFrom('cluster.local/', 'cluster.local/ns/a/', 'a', '') }),
    fc.record({ $case: fc.constant('suffix' as const), value: fc.constantFrom('/sa/web', '/sa/db', 'b', '') }),
    fc.record({ $case: fc.constant('presence' as const), value: fc.constant(true) }),
  )
  .map((matchType) => ({ $type: 'nodemesh.workload.v1.StringMatch' as const, matchType }));
const cidr: fc.Arbitrary<CidrRange> = fc
  .record({ ip: fc.constantFrom(...IPS, '10.200.0.0', '0.0.0.0'), length: fc.constantFrom(0, 8, 16, 24, 31, 32) })
  .map(({ ip, length }) => ({
    $type: 'nodemesh.workload.v1.CidrRange' as const,
    address: Buffer.from(ip.split('.').map(Number)),
    length,
  }));
const port = fc.constantFrom(80, 8080, 5432);
const few = <T>(a: fc.Arbitrary<T>) => fc.array(a, { maxLength: 2 });
const match: fc.Arbitrary<Match> = fc
  .record({
    principals: few(strMatch),
    notPrincipals: few(strMatch),
    namespaces: few(strMatch),
    notNamespaces: few(strMatch),
    sourceIps: few(cidr),
    notSourceIps: few(cidr),
    destinationIps: few(cidr),
    notDestinationIps: few(cidr),
    destinationPorts: few(port),
    notDestinationPorts: few(port),
  })
  .map((m) => ({ $type: 'nodemesh.workload.v1.Match' as const, ...m }));
const clause: fc.Arbitrary<Clause> = fc.array(match, { maxLength: 2 }).map((matches) => ({ $type: 'nodemesh.workload.v1.Clause' as const, matches }));
const rule: fc.Arbitrary<PolicyRule> = fc.record({
  clauses: fc.array(clause, { maxLength: 2 }),
  l7Attributes: fc.option(fc.constant(['methods']), { nil: undefined, freq: 4 }),
});
const policy: fc.Arbitrary<PolicyAuthorization> = fc.record({
  name: fc.constantFrom('p1', 'p2', 'p3'),
  namespace: fc.constantFrom('a', 'b'),
  scope: fc.constant(AuthorizationScope.AUTHORIZATION_SCOPE_WORKLOAD_SELECTOR),
  action: fc.constantFrom(AuthorizationAction.AUTHORIZATION_ACTION_ALLOW, AuthorizationAction.AUTHORIZATION_ACTION_DENY),
  rules: fc.array(rule, { maxLength: 3 }),
});

interface Input {
  readonly connection: PolicyConnection;
  readonly context: PolicyContext;
}

export const policyTarget = target({
  name: 'policy',
  what: 'node-proxy evaluate() vs a reference model: allowed/denied for generated connections, Authorizations (ALLOW/DENY, L4 and L7 rules) and STRICT/PERMISSIVE',
  arbitrary: fc.record({
    connection: fc.record({
      sourceIdentity: fc.option(fc.constantFrom('spiffe://cluster.local/ns/a/sa/web', 'spiffe://cluster.local/ns/b/sa/db', 'spiffe://other/ns/a/sa/web'), {
        nil: undefined,
      }),
      sourceIp: fc.constantFrom(...IPS),
      destinationIp: fc.constantFrom(...IPS),
      destinationPort: port,
    }),
    context: fc.record({
      destination: fc.constant('a/web-1'),
      authorizations: fc.array(policy, { maxLength: 4 }),
      peerAuthentication: fc.record({ mode: fc.constantFrom('STRICT' as const, 'PERMISSIVE' as const) }),
      hasWaypoint: fc.boolean(),
    }),
  }),
  unitRuns: 3_000,
  check: (i: Input) => {
    const got = evaluate(i.connection, i.context);
    const want = referenceAllows(i.connection, i.context);
    if (got.allowed !== want)
      throw new Error(`evaluate says ${got.allowed ? 'allow' : 'deny'} (${got.reason}); the reference model says ${want ? 'allow' : 'deny'}`);
    if (typeof got.reason !== 'string' || got.reason === '') throw new Error('a verdict without a reason');
  },
});
