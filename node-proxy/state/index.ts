// The node proxy's view of the mesh: workload state from the control plane and the routing decision.
export { WorkloadState, serviceKey, type LocalWorkloadEvent, type StateChange } from './workload-state';
export {
  resolve,
  RoundRobin,
  type RouteDecision,
  type MeshView,
  type ServiceEndpoint,
  type WaypointTarget,
  type Destination,
  type EndpointPicker,
} from './resolve';
export { AddressResource, AuthorizationResource, ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL, addressProblem, authorizationProblem } from './resource-types';
export { PeerAuthenticationResource, PEER_AUTHENTICATION_TYPE_URL, peerAuthenticationProblem, WORKLOAD_API_RESOURCE_TYPES } from './resource-types';
export { peerAuthenticationPolicy, mtlsSetting } from './peer-authentication';
export { canonicalIp, ipFromBytes, ipToBytes } from './ip';
