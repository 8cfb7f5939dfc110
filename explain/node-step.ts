// The node proxy's side: its PlanView over the World's state for one node, and a destination's
// admission (plan.ts `admit`, the code the inbound path runs for HBONE, plaintext and same-node)
// turned into the policy decisions it took, in the order it takes them: PeerAuthentication,
// the waypoint binding, then AuthorizationPolicies.
import type { Workload } from '../api/gen/nodemesh/workload/v1/workload';
import { WorkloadState } from '../node-proxy/state/workload-state';
import { AuthorizationAction } from '../node-proxy/policy/model';
import { admit, policyContextFor, type Admission, type InboundRequest, type PlanView } from '../node-proxy/proxy/plan';
import type { PolicyDecision } from './model';
import type { World } from './world';

/** What planning and admission read on `node`: the state its node proxy builds, serving its enrolled workloads. */
export function planView(world: World, node: string): PlanView {
  // Which workloads are this node's own: what a WorkloadState for the node says (an empty one
  // answers that; the mesh itself is the shared state).
  const own = new WorkloadState(node);
  return {
    node,
    trustDomain: world.options.trustDomain,
    state: world.state,
    // The node proxy serves (HBONE listener open) every enrolled workload of its node.
    servesLocally: (w: Workload) => own.isLocalEnrolled(w),
    // The daemon adds none of its own (node-proxy/mesh/mesh.ts): they come with the state.
    peerAuthentications: () => [],
  };
}

export interface AdmissionStep {
  readonly admission: Admission;
  readonly decisions: PolicyDecision[];
}

/** The destination's node proxy admitting one connection, and which policy points decided what. */
export function admitAt(world: World, input: InboundRequest): AdmissionStep {
  const node = input.destination.node;
  const view = planView(world, node);
  const admission = admit(view, input);
  const ctx = policyContextFor(view, input.destination, input.target.port);
  const v = admission.verdict;
  const enforcer = `node proxy ${node}`;
  const target = `${input.destination.namespace}/${input.destination.name}`;
  const decisions: PolicyDecision[] = [];
  const pa = ctx.peerAuthentication;
  const plaintext = admission.connection.sourceIdentity === undefined;
  const paDenied = !v.allowed && pa.mode === 'STRICT' && plaintext;
  decisions.push({
    enforcer,
    target,
    kind: 'PeerAuthentication',
    ...(pa.policy ? { policy: pa.policy } : {}),
    action: pa.mode,
    allowed: !paDenied,
    reason: paDenied
      ? v.reason
      : `${pa.mode}${pa.policy ? ` (PeerAuthentication ${pa.policy})` : ' (no PeerAuthentication: the default)'}; the connection ${plaintext ? 'is plaintext' : `carries the peer identity ${admission.connection.sourceIdentity}`}`,
  });
  if (paDenied) return { admission, decisions };
  const bindings = ctx.waypoints ?? [];
  if (bindings.length > 0) {
    const bypass = !v.allowed && v.policy?.startsWith('Gateway/') === true;
    decisions.push({
      enforcer,
      target,
      kind: 'waypoint-binding',
      policy: bindings.map((b) => b.gateway).join(', '),
      allowed: !bypass,
      reason: bypass
        ? v.reason
        : `bound to waypoint ${bindings.map((b) => `${b.gateway} (${b.via})`).join(', ')}; the peer ${admission.connection.sourceIdentity} is the waypoint`,
    });
    if (bypass) return { admission, decisions };
  }
  const decided = v.policy ? ctx.authorizations.find((a) => `${a.namespace}/${a.name}` === v.policy) : undefined;
  decisions.push({
    enforcer,
    target,
    kind: 'AuthorizationPolicy',
    ...(v.policy ? { policy: v.policy } : {}),
    ...(v.rule !== undefined ? { rule: v.rule } : {}),
    ...(decided ? { action: decided.action === AuthorizationAction.AUTHORIZATION_ACTION_DENY ? 'DENY' : 'ALLOW' } : {}),
    allowed: v.allowed,
    reason: v.reason,
  });
  return { admission, decisions };
}
