// Where a lab's mesh keeps its files: everything under the lab's state dir, so `lab down` removes it.
import { join } from 'node:path';
import { labStateDir } from '../state';

export const CONTROL_API_PORT = 15014;
export const CONTROL_XDS_PORT = 15012;
export const PROXY_ADMIN_PORT = 15000;
export const PROXY_METRICS_PORT = 15020;
export const PROXY_READY_PORT = 15021;

export interface MeshPaths {
  /** The control plane's data dir (store, API token, CA root and node tokens). */
  controlDataDir: string;
  /** The config API's bearer token. */
  apiToken: string;
  /** The mesh root (PEM) the node proxies trust. */
  trustBundle: string;
  logs: string;
  nodeToken(node: string): string;
  log(place: string, name: string): string;
}

export function meshPaths(lab: string): MeshPaths {
  const dir = labStateDir(lab);
  const controlDataDir = join(dir, 'control');
  const logs = join(dir, 'logs');
  return {
    controlDataDir,
    apiToken: join(controlDataDir, 'token'),
    trustBundle: join(dir, 'mesh', 'trust-bundle.pem'),
    logs,
    nodeToken: (node) => join(dir, 'mesh', `${node}.token`),
    log: (place, name) => join(logs, `${place}-${name}.log`),
  };
}
