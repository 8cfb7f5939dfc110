// The stand-in API server (a test fixture): see server.ts for what it implements.
export { StandInApiServer, ApiError, type StandInApiServerOptions } from './server';
export { RESOURCE_TYPES, type KubeObject, type ResourceType } from './types';
export type { TokenRequest } from './tokens';
export { kubectl, type KubectlResult } from './kubectl';
export { startStandIn, type StandIn } from './fixture';
