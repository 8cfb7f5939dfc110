// The config CLI (`nodemesh apply|get|delete|namespace`) talking to a lab's control plane from the
// root netns: the server address is the control host's, the socket is opened inside the control
// netns, and the token comes from the control plane's data dir. `labDialer` is the config CLI's
// ControlPlaneDialer (control/cmd/context.ts), registered by the dispatcher: it answers `--lab LAB`,
// or by itself when exactly one lab runs a mesh and no server was named.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { ClientRequestArgs } from 'node:http';
import { controlRootOf, meshPaths } from './paths';
import type { ControlPlaneDialer } from '../../control/cmd/context';
import { netnsConnector } from '../../native/netns-http';
import { checkLabName, LAB_STATE_ROOT, loadLabState, LabStateError, tryLoadLabState } from '../state';
import { CONFIG_API_PORT } from '../../common/contracts/ports';

export interface LabConnection {
  lab: string;
  server: string;
  token: string;
  createConnection: NonNullable<ClientRequestArgs['createConnection']>;
  /** The mesh root the config API's certificate is verified with. */
  ca: string;
}

/** Labs that are up and run a control plane (have its API token). */
export function labsWithMesh(): string[] {
  let names: string[];
  try {
    names = readdirSync(LAB_STATE_ROOT);
  } catch {
    return [];
  }
  return names.filter((n) => {
    try {
      checkLabName(n);
      const s = tryLoadLabState(n);
      return s?.phase === 'ready' && existsSync(meshPaths(n).apiToken);
    } catch {
      return false;
    }
  });
}

export function labConnection(lab: string): LabConnection {
  const state = loadLabState(lab);
  const tokenFile = meshPaths(lab).apiToken;
  let token: string;
  try {
    token = readFileSync(tokenFile, 'utf8').trim();
  } catch {
    throw new LabStateError(`lab '${lab}' runs no control plane (no ${tokenFile}); start the mesh with 'nodemesh lab up --lab ${lab}' (without --no-mesh)`);
  }
  const ca = controlRootOf(meshPaths(lab));
  if (ca === undefined)
    throw new LabStateError(
      `lab '${lab}' has no CA root at ${meshPaths(lab).controlRoot} to verify its control plane with; restart the mesh with 'nodemesh lab up --lab ${lab}'`,
    );
  return {
    lab,
    server: `https://${state.control.ip}:${CONFIG_API_PORT}`,
    token,
    createConnection: netnsConnector(state.control.netnsPath),
    ca,
  };
}

export interface ConnectionChoice {
  lab?: string;
  server?: string;
  env: NodeJS.ProcessEnv;
}

/**
 * The lab to talk to: the one named by --lab, else — when no server was named (flag or
 * NODEMESH_SERVER) — the only lab running a mesh. undefined: use the ordinary connection.
 */
export function chooseLab(c: ConnectionChoice): string | undefined {
  if (c.lab !== undefined) return checkLabName(c.lab);
  if (c.server !== undefined || c.env.NODEMESH_SERVER) return undefined;
  const labs = labsWithMesh();
  return labs.length === 1 ? labs[0] : undefined;
}

/** The config CLI's way into a lab's control plane (registered by cli/main.ts). */
export const labDialer: ControlPlaneDialer = (choice) => {
  const lab = chooseLab(choice);
  return lab === undefined ? undefined : labConnection(lab);
};
