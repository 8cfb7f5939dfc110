// The policy context of a destination workload, from the workload state: the Authorizations that
// apply to it, the PeerAuthentication mode for the port, and whether it has a waypoint.
import type { Workload } from '../../api/gen/nodemesh/workload/v1/workload';
import type { WorkloadState } from '../state/workload-state';
import type { PolicyContext } from './model';
import { effectivePeerAuthentication, type PeerAuthenticationPolicy } from './peer-authentication';

export function policyContext(
  state: Pick<WorkloadState, 'authorizationsFor'>,
  destination: Workload,
  port: number,
  peerAuthentications: readonly PeerAuthenticationPolicy[] = [],
): PolicyContext {
  return {
    destination: `${destination.namespace}/${destination.name}`,
    authorizations: state.authorizationsFor(destination),
    peerAuthentication: effectivePeerAuthentication(peerAuthentications, destination, port),
    hasWaypoint: destination.waypoint !== undefined,
  };
}
