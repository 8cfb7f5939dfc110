// What L4 policy is evaluated on and what it answers. The policies are the workload API's
// Authorization messages (Istio AuthorizationPolicy semantics at L4); a rule may additionally say
// which L7 attributes it needed (methods, paths, hosts, …) so the node proxy can refuse, with a
// reason, what only a waypoint could check.
import type { Clause } from '../../api/gen/nodemesh/workload/v1/workload';
import type { WaypointBinding } from './waypoint';
import { AuthorizationAction, AuthorizationScope } from '../../api/gen/nodemesh/workload/v1/workload';

export { AuthorizationAction, AuthorizationScope };

/** A rule: every clause must match (an empty rule matches everything). */
export interface PolicyRule {
  readonly clauses: readonly Clause[];
  /**
   * L7 attributes the original rule used (e.g. "methods", "paths", "hosts"). The clauses hold
   * only its L4 part. Empty or absent for a pure L4 rule.
   */
  readonly l7Attributes?: readonly string[];
}

/** An Authorization as the evaluator reads it (the workload API message fits). */
export interface PolicyAuthorization {
  readonly name: string;
  readonly namespace: string;
  readonly scope: AuthorizationScope;
  readonly action: AuthorizationAction;
  readonly rules: readonly PolicyRule[];
}

export type MtlsMode = 'STRICT' | 'PERMISSIVE';

/** The PeerAuthentication mode in force for the destination port, and which policy set it. */
export interface PeerAuthenticationDecision {
  readonly mode: MtlsMode;
  /** "<namespace>/<name>" of the PeerAuthentication, absent for the default (PERMISSIVE). */
  readonly policy?: string;
}

/** One connection arriving at a workload, as policy sees it. */
export interface PolicyConnection {
  /** The peer's SPIFFE ID from its verified certificate; absent for plaintext. */
  readonly sourceIdentity?: string;
  readonly sourceIp: string;
  readonly destinationIp: string;
  readonly destinationPort: number;
}

/** Everything that applies to the destination workload. */
export interface PolicyContext {
  /** The destination workload's "<namespace>/<name>" (for reasons and logs). */
  readonly destination: string;
  /** Authorizations that apply to it (global, namespace and selector scope). */
  readonly authorizations: readonly PolicyAuthorization[];
  readonly peerAuthentication: PeerAuthenticationDecision;
  /** The destination has a waypoint (which checks the L7 parts of rules). */
  readonly hasWaypoint: boolean;
  /**
   * The waypoints the destination is bound to (its own, or its Services'). When there are any,
   * only their identities may connect: everything else would bypass the waypoint's L7 policy.
   */
  readonly waypoints?: readonly WaypointBinding[];
}

export interface Verdict {
  readonly allowed: boolean;
  /** "<namespace>/<name>" of the policy that decided; absent when no policy did (default allow). */
  readonly policy?: string;
  /** The rule of `policy` that matched (1-based), when a rule decided. */
  readonly rule?: number;
  /** Why, in words an operator can act on. */
  readonly reason: string;
}
