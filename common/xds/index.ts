// The delta ADS client shared by the node proxy and the waypoint.
export { DeltaXdsClient, type DeltaXdsClientOptions, type XdsClientStatus, type XdsCredentials, type XdsNode } from './client';
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff';
export { ResourceSet } from './resource-set';
export { WILDCARD_NAME, type ResourceChange, type ResourceEntry, type ResourceType, type Subscription } from './types';
