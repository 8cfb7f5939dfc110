// The lab's control plane: `nodemesh control` in the control netns (10.199.0.254; API on HTTPS :15014,
// xDS + certificates on :15012 with node tokens required), then one node token per node and the
// trust bundle for the node proxies, written under the lab's state dir.
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { cliEntry } from '../../common/paths';
import type { LabTopology } from '../state';
import { launch, waitReady, type Launched } from './launch';
import { controlRootOf, meshPaths } from './paths';
import { CONFIG_API_PORT, XDS_TLS_PORT } from '../../common/contracts/ports';
import { labControlPlaneEnv } from '../time-scale';

function nodemesh(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [cliEntry, ...args], { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`nodemesh ${args.join(' ')} failed: ${(stderr || err.message).trim()}`));
      else resolve(stdout);
    });
  });
}

export const CONTROL_PLANE_PROCESS = 'control-plane';

export interface ControlPlaneStarted extends Launched {
  /** host:port node proxies dial for xDS and certificates. */
  xds: string;
}

/** Starts `nodemesh control` in the control netns (recorded as `control-plane`); does not wait. */
export function launchControlPlane(state: LabTopology): Launched {
  const paths = meshPaths(state.lab);
  mkdirSync(paths.controlDataDir, { recursive: true, mode: 0o700 });
  return launch(
    state,
    'control',
    CONTROL_PLANE_PROCESS,
    // the control host's address only, so HTTPS with the mesh CA (plain HTTP is for loopback)
    [process.execPath, cliEntry, 'control', '--data-dir', paths.controlDataDir, '--listen', `${state.control.ip}:${CONFIG_API_PORT}`],
    paths.log('control', CONTROL_PLANE_PROCESS),
    {
      NODEMESH_XDS_LISTEN: `:${XDS_TLS_PORT}`,
      NODEMESH_XDS_REQUIRE_NODE_TOKEN: '1',
      NODEMESH_LOG_LEVEL: process.env.NODEMESH_LOG_LEVEL ?? 'info',
      ...labControlPlaneEnv(),
    },
  );
}

export async function startControlPlane(state: LabTopology): Promise<ControlPlaneStarted> {
  const p = launchControlPlane(state);
  await waitReady(state.control.netnsPath, state.control.ip, CONFIG_API_PORT, '/healthz/ready', p, 20_000, () => controlRootOf(meshPaths(state.lab)));
  return { ...p, xds: `${state.control.ip}:${XDS_TLS_PORT}` };
}

/** A token per node (files 0600) and the mesh root as the node proxies' trust bundle. */
export async function issueNodeCredentials(state: LabTopology): Promise<void> {
  const paths = meshPaths(state.lab);
  mkdirSync(dirname(paths.trustBundle), { recursive: true, mode: 0o700 });
  for (const n of state.nodes) {
    await nodemesh(['ca', 'issue-node-token', '--data-dir', paths.controlDataDir, '--node', n.name, '--out', paths.nodeToken(n.name)]);
  }
  const root = await nodemesh(['ca', 'root', '--data-dir', paths.controlDataDir]);
  if (!root.includes('BEGIN CERTIFICATE')) throw new Error(`nodemesh ca root printed no certificate: ${root.slice(0, 200)}`);
  writeFileSync(paths.trustBundle, root, { mode: 0o644 });
}
