// L4 authorization, Istio semantics (as ztunnel applies them):
//   1. PeerAuthentication STRICT refuses a connection without a peer identity.
//   2. A DENY policy that matches refuses the connection (DENY wins).
//   3. If no ALLOW policy applies, the connection is allowed; if some do, one must match.
// A policy matches when any rule matches; a rule when every clause matches (an empty rule matches
// everything); a clause when any of its matches matches; a match when every non-empty field
// matches — a positive list when the value is in it, a negative list when it is in none of it.
// Without a peer identity, principal and namespace are absent: a positive list never matches, a
// negative list always does (so DENY notPrincipals ["*"] refuses plaintext, as in Istio).
// Rules that needed L7 attributes: an ALLOW rule cannot match (the node proxy sees no request)
// and a DENY rule applies on its L4 part alone (fail closed) — with or without a waypoint, as
// ztunnel does: the workload API carries only selector / namespace / mesh policies, and waypoints
// enforce only policies whose targetRefs name their Service or Gateway, so nobody would check the
// L7 part of these (relaxing them when a waypoint exists let every method through; lab-tested).
// A destination bound to a waypoint (its own or a Service's) admits only the waypoint's identity,
// checked after STRICT and before the Authorizations (which then see the waypoint as the peer).
// A targetRefs policy whose Service has no usable waypoint arrives as a DENY of everything marked
// "targetRefs:Service/<ns>/<name>" (control/workload/target-refs.ts): nobody else would enforce
// it, so the node proxy refuses every connection and says which policy and Service, and what to do.
import type { Clause, Match, StringMatch } from '../../api/gen/nodemesh/workload/v1/workload';
import { tryParseSpiffeId, SPIFFE_SCHEME } from '../../common/identity/spiffe';
import { ipToBytes } from '../state/ip';
import { cidrContains } from '../../common/ip';
import { unenforcedTargetRefs } from '../../control/workload/target-refs';
import { fromBoundWaypoint, type WaypointBinding } from './waypoint';
import { AuthorizationAction, type PolicyAuthorization, type PolicyConnection, type PolicyContext, type PolicyRule, type Verdict } from './model';

/** The attributes of a connection that matches compare, computed once per evaluation. */
interface Facts {
  /** Identity without the scheme: "<trust-domain>/ns/<ns>/sa/<sa>", as Istio policies write it. */
  readonly principal?: string;
  readonly namespace?: string;
  readonly sourceIp?: Buffer;
  readonly destinationIp?: Buffer;
  readonly port: number;
}

/** A peer identity's principal and namespace, parsed once per identity (every connection asks). */
const peers = new Map<string, { principal: string; namespace: string | undefined }>();
const PEER_CACHE_LIMIT = 1024;

function peerOf(identity: string): { principal: string; namespace: string | undefined } {
  let p = peers.get(identity);
  if (!p) {
    p = {
      principal: identity.startsWith(SPIFFE_SCHEME) ? identity.slice(SPIFFE_SCHEME.length) : identity,
      namespace: tryParseSpiffeId(identity.startsWith(SPIFFE_SCHEME) ? identity : SPIFFE_SCHEME + identity)?.namespace,
    };
    if (peers.size >= PEER_CACHE_LIMIT) peers.clear();
    peers.set(identity, p);
  }
  return p;
}

function factsOf(c: PolicyConnection): Facts {
  const peer = c.sourceIdentity ? peerOf(c.sourceIdentity) : undefined;
  return {
    principal: peer?.principal,
    namespace: peer?.namespace,
    sourceIp: ipToBytes(c.sourceIp),
    destinationIp: ipToBytes(c.destinationIp),
    port: c.destinationPort,
  };
}

export function stringMatches(m: StringMatch, value: string | undefined): boolean {
  if (value === undefined || value === '') return false;
  switch (m.matchType?.$case) {
    case 'exact':
      return value === m.matchType.value;
    case 'prefix':
      return value.startsWith(m.matchType.value);
    case 'suffix':
      return value.endsWith(m.matchType.value);
    case 'presence':
      return true;
    default:
      return false;
  }
}

export { cidrContains };

function positive<T, V>(list: readonly T[], value: V, test: (item: T, value: V) => boolean): boolean {
  return list.length === 0 || list.some((item) => test(item, value));
}
function negative<T, V>(list: readonly T[], value: V, test: (item: T, value: V) => boolean): boolean {
  return list.length === 0 || !list.some((item) => test(item, value));
}

export function matchMatches(m: Match, f: Facts): boolean {
  return (
    positive(m.principals, f.principal, stringMatches) &&
    negative(m.notPrincipals, f.principal, stringMatches) &&
    positive(m.namespaces, f.namespace, stringMatches) &&
    negative(m.notNamespaces, f.namespace, stringMatches) &&
    positive(m.sourceIps, f.sourceIp, cidrContains) &&
    negative(m.notSourceIps, f.sourceIp, cidrContains) &&
    positive(m.destinationIps, f.destinationIp, cidrContains) &&
    negative(m.notDestinationIps, f.destinationIp, cidrContains) &&
    positive(m.destinationPorts, f.port, (p, v) => p === v) &&
    negative(m.notDestinationPorts, f.port, (p, v) => p === v)
  );
}

function clauseMatches(c: Clause, f: Facts): boolean {
  return c.matches.some((m) => matchMatches(m, f));
}

function ruleMatches(r: PolicyRule, f: Facts): boolean {
  return r.clauses.every((c) => clauseMatches(c, f));
}

const nameOf = (p: PolicyAuthorization): string => `${p.namespace}/${p.name}`;
const byName = (a: PolicyAuthorization, b: PolicyAuthorization): number => (nameOf(a) < nameOf(b) ? -1 : nameOf(a) > nameOf(b) ? 1 : 0);

export function evaluate(connection: PolicyConnection, context: PolicyContext): Verdict {
  const facts = factsOf(connection);
  const pa = context.peerAuthentication;

  if (pa.mode === 'STRICT' && !facts.principal) {
    return {
      allowed: false,
      policy: pa.policy,
      reason:
        `PeerAuthentication ${pa.policy ?? '(mesh default)'} requires mutual TLS (STRICT) for ${context.destination} port ${facts.port}, ` +
        'and this connection is plaintext without a peer identity; send it from an enrolled workload or set the mode to PERMISSIVE',
    };
  }

  const bypass = waypointBypass(connection, context.destination, context.waypoints ?? []);
  if (bypass) return bypass;

  const denies = context.authorizations.filter((p) => p.action === AuthorizationAction.AUTHORIZATION_ACTION_DENY).sort(byName);
  for (const policy of denies) {
    for (const [i, rule] of policy.rules.entries()) {
      if (!ruleMatches(rule, facts)) continue;
      const l7 = rule.l7Attributes ?? [];
      const services = unenforcedTargetRefs(l7);
      if (services.length > 0) return { allowed: false, policy: nameOf(policy), reason: withoutWaypointReason(nameOf(policy), services, context.destination) };
      const note =
        l7.length > 0
          ? `; the rule also names L7 attributes [${l7.join(', ')}], which only a waypoint can check${context.hasWaypoint ? ' (and waypoints enforce only policies with targetRefs)' : ''}, so it is enforced on its L4 part alone (fail closed)`
          : '';
      return { allowed: false, policy: nameOf(policy), rule: i + 1, reason: `denied by DENY policy ${nameOf(policy)} (rule ${i + 1})${note}` };
    }
  }

  const allows = context.authorizations.filter((p) => p.action === AuthorizationAction.AUTHORIZATION_ACTION_ALLOW).sort(byName);
  if (allows.length === 0) return { allowed: true, reason: `no ALLOW policy applies to ${context.destination}` };
  const l7Only: Array<{ policy: string; text: string }> = [];
  for (const policy of allows) {
    for (const [i, rule] of policy.rules.entries()) {
      const l7 = rule.l7Attributes ?? [];
      if (l7.length > 0) {
        if (ruleMatches(rule, facts)) l7Only.push({ policy: nameOf(policy), text: `${nameOf(policy)} rule ${i + 1} needs L7 attributes [${l7.join(', ')}]` });
        continue;
      }
      if (ruleMatches(rule, facts))
        return { allowed: true, policy: nameOf(policy), rule: i + 1, reason: `allowed by ALLOW policy ${nameOf(policy)} (rule ${i + 1})` };
    }
  }
  const names = allows.map(nameOf).join(', ');
  if (l7Only.length > 0) {
    return {
      allowed: false,
      policy: l7Only[0]!.policy,
      reason: context.hasWaypoint
        ? `only rules with L7 attributes would allow this connection (${l7Only.map((x) => x.text).join('; ')}); ${context.destination} has a waypoint, but a waypoint ` +
          'enforces only AuthorizationPolicies whose targetRefs name its Service or Gateway, not selector policies; move the rule to a policy with targetRefs or write it with L4 fields only'
        : `only rules with L7 attributes would allow this connection (${l7Only.map((x) => x.text).join('; ')}), and ${context.destination} has no waypoint to check them; ` +
          'attach a waypoint (nodemesh.io/use-waypoint) and target the Service with targetRefs, or write the rule with L4 fields only',
    };
  }
  return {
    allowed: false,
    reason: `no ALLOW policy matched (${context.destination} has ALLOW policies ${names}; a connection must match one of them)`,
  };
}

/** Why a targetRefs policy on a Service without a usable waypoint refuses everything. */
function withoutWaypointReason(policy: string, services: readonly string[], destination: string): string {
  const list = services.join(', ');
  return (
    `denied by AuthorizationPolicy ${policy}: it targets ${list} (targetRefs), which has no usable waypoint, and only a waypoint enforces ` +
    `targetRefs policies; rather than let nobody enforce it, ${destination} refuses every connection (fail closed); ` +
    `attach a waypoint to the Service (nodemesh.io/use-waypoint) or select the workloads with spec.selector instead of targetRefs`
  );
}

/** The verdict for a connection that does not come from the destination's waypoint, if it does not. */
function waypointBypass(c: PolicyConnection, destination: string, bindings: readonly WaypointBinding[]): Verdict | undefined {
  if (bindings.length === 0 || fromBoundWaypoint(bindings, c.sourceIdentity)) return undefined;
  const first = bindings.find((b) => b.unresolvedReason === undefined) ?? bindings[0]!;
  const peer = c.sourceIdentity ? `from ${c.sourceIdentity}` : `in plaintext from ${c.sourceIp} (no peer identity)`;
  const policy = `Gateway/${first.gateway}`;
  if (bindings.every((b) => b.unresolvedReason !== undefined)) {
    return {
      allowed: false,
      policy,
      reason:
        `${destination} is bound to waypoint ${first.gateway} (${first.via}), which cannot be used (${first.unresolvedReason}); ` +
        `the connection ${peer} is refused rather than bypassing the waypoint's L7 policy (fail closed); deploy the waypoint or remove nodemesh.io/use-waypoint`,
    };
  }
  const ids = [...new Set(bindings.flatMap((b) => b.identities))].join(', ');
  const names = [...new Set(bindings.map((b) => `${b.gateway} (${b.via})`))].join(', ');
  return {
    allowed: false,
    policy,
    reason:
      `${destination} is bound to waypoint ${names}: only the waypoint (${ids}) may connect to it, so its L7 policy cannot be bypassed, ` +
      `and this connection came ${peer}; send the traffic to the Service address so it goes through the waypoint`,
  };
}
