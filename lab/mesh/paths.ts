// Where a lab's mesh keeps its files: everything under the lab's state dir, so `lab down` removes it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { labStateDir } from '../state';

/** The control plane's CA root (PEM), or undefined before the control plane has made it. */
export function controlRootOf(paths: MeshPaths): string | undefined {
  try {
    return readFileSync(paths.controlRoot, 'utf8');
  } catch {
    return undefined;
  }
}

export interface MeshPaths {
  /** The control plane's data dir (store, API token, CA root and node tokens). */
  controlDataDir: string;
  /** The config API's bearer token. */
  apiToken: string;
  /** The mesh root (PEM) the node proxies trust. */
  trustBundle: string;
  /** The CA root in the control plane's data dir: what clients verify the config API (HTTPS) with. */
  controlRoot: string;
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
    controlRoot: join(controlDataDir, 'ca', 'root-cert.pem'),
    logs,
    nodeToken: (node) => join(dir, 'mesh', `${node}.token`),
    log: (place, name) => join(logs, `${place}-${name}.log`),
  };
}
