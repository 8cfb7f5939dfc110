// The policy context of a destination workload, from the workload state: the Authorizations that
// apply to it, the PeerAuthentication mode for the port, and whether it has a waypoint.
import type { Workload } from '../../api/gen/nodemesh/workload/v1/workload';
import type { WorkloadState } from '../state/workload-state';
import type { PolicyContext } from './model';
import { effectivePeerAuthentication, type PeerAuthenticationPolicy } from './peer-authentication';
import { waypointBindings, type WaypointView } from './waypoint';

/**
 * The policy context for a connection to `destination` on `port`. PeerAuthentications: the ones
 * the state holds for the destination (WorkloadState follows the workload API's PeerAuthentication
 * type) plus any given here (e.g. from a local file); Istio's precedence picks among them.
 */
export function policyContext(
  state: Pick<WorkloadState, 'authorizationsFor'> & Partial<Pick<WorkloadState, 'peerAuthenticationsFor'>> & Partial<WaypointView>,
  destination: Workload,
  port: number,
  peerAuthentications?: readonly PeerAuthenticationPolicy[],
  trustDomain?: string,
): PolicyContext {
  const fromState = state.peerAuthenticationsFor?.(destination) ?? [];
  const pas = peerAuthentications && peerAuthentications.length > 0 ? [...fromState, ...peerAuthentications] : fromState;
  // With the mesh view at hand, the waypoints of the Services selecting the workload count too.
  const view = hasWaypointView(state) ? state : undefined;
  const waypoints = view ? waypointBindings(view, destination, trustDomain) : undefined;
  return {
    destination: `${destination.namespace}/${destination.name}`,
    authorizations: state.authorizationsFor(destination),
    peerAuthentication: effectivePeerAuthentication(pas, destination, port),
    // A waypoint the control plane could not resolve checks nothing: L7 rules cannot be relied on.
    hasWaypoint: waypoints ? waypoints.some((b) => b.unresolvedReason === undefined) : destination.waypoint?.destination !== undefined,
    waypoints,
  };
}

function hasWaypointView(s: Partial<WaypointView>): s is WaypointView {
  return (
    typeof s.service === 'function' && typeof s.serviceByHostname === 'function' && typeof s.workloadByIp === 'function' && typeof s.endpoints === 'function'
  );
}
