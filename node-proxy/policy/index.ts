// L4 policy: AuthorizationPolicy (ALLOW/DENY) and PeerAuthentication (STRICT/PERMISSIVE), pure.
export { evaluate, stringMatches, cidrContains } from './evaluate';
export { effectivePeerAuthentication, type PeerAuthenticationPolicy, type PeerAuthenticationTarget, type MtlsSetting } from './peer-authentication';
export { connectionsNoLongerAllowed, type OpenConnection, type ConnectionToClose } from './revalidate';
export { policyContext } from './context';
export * from './model';
export { waypointBindings, waypointIdentities, fromBoundWaypoint, type WaypointBinding, type WaypointView } from './waypoint';
