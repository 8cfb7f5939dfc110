// Puts the `nodemesh` CNI plugin executable into a CNI bin directory. The executable is the C
// program node-proxy/cni/c/nodemesh-cni.c (no Node.js: the container runtime runs it on the host),
// built by scripts/setup.sh into dist/cni-plugin/nodemesh; the image also has it at
// /opt/nodemesh/cni-plugin/nodemesh, where the chart's installer takes it from.
import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../common/paths';

export const PLUGIN_TYPE = 'nodemesh';

/** The executable built in this checkout (or image). */
export const CNI_PLUGIN_EXECUTABLE = join(projectRoot, 'dist', 'cni-plugin', PLUGIN_TYPE);

/** Copies the plugin executable to <binDir>/nodemesh atomically (mode 0755) and returns its path. */
export function installCniPlugin(binDir: string, source = CNI_PLUGIN_EXECUTABLE): string {
  if (!existsSync(source)) throw new Error(`the CNI plugin executable ${source} is missing; build it with 'bash scripts/setup.sh'`);
  mkdirSync(binDir, { recursive: true });
  const path = join(binDir, PLUGIN_TYPE);
  const tmp = `${path}.tmp-${process.pid}`;
  copyFileSync(source, tmp);
  chmodSync(tmp, 0o755);
  renameSync(tmp, path);
  return path;
}
