// Puts the `nodemesh` CNI plugin executable into a CNI bin directory: a two-line sh wrapper that runs the
// plugin's entry with this Node.js (absolute paths: runtimes call plugins with a minimal PATH).
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../common/paths';
import { PLUGIN_TYPE } from './plugin';

const shQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** The wrapper's text for a given node binary and plugin entry (dist/node-proxy/cni/main.js). */
export function cniPluginWrapper(nodeBin = process.execPath, entry = join(projectRoot, 'dist', 'node-proxy', 'cni', 'main.js')): string {
  return `#!/bin/sh\n# nodemesh CNI plugin (chained after the cluster's network plugin)\nexec ${shQuote(nodeBin)} ${shQuote(entry)}\n`;
}

/** Writes <binDir>/nodemesh atomically (mode 0755) and returns its path. */
export function writeCniPluginWrapper(binDir: string, text = cniPluginWrapper()): string {
  mkdirSync(binDir, { recursive: true });
  const path = join(binDir, PLUGIN_TYPE);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o755 });
  chmodSync(tmp, 0o755);
  renameSync(tmp, path);
  return path;
}
