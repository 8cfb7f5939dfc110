// Who a sample app instance is: from flags, else env (lab exec sets NODEMESH_POD / NODEMESH_NODE).
import { hostname } from 'node:os';

export interface AppIdentity {
  app: string;
  pod: string;
  node: string;
  version: string;
}

export function appIdentity(flags: { name?: string; pod?: string; node?: string; version?: string }, env = process.env): AppIdentity {
  return {
    app: flags.name ?? env.APP_NAME ?? 'sample',
    pod: flags.pod ?? env.NODEMESH_POD ?? env.POD_NAME ?? hostname(),
    node: flags.node ?? env.NODEMESH_NODE ?? env.NODE_NAME ?? 'unknown',
    version: flags.version ?? env.APP_VERSION ?? 'v1',
  };
}
