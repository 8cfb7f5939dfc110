// What build this process runs: the package version, the git commit the set-up step built from,
// and the Node.js version. The config API serves it at /version; `nodemesh version` prints it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from './paths';

export interface BuildInfo {
  readonly version: string;
  /** `git rev-parse HEAD` at build time, `+dirty` when the tree had changes; `unknown` outside git. */
  readonly commit: string;
  readonly node: string;
}

let cached: BuildInfo | undefined;

function readJson(path: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

export function buildInfo(): BuildInfo {
  if (cached) return cached;
  const pkg = readJson(join(projectRoot, 'package.json'));
  const built = readJson(join(projectRoot, 'dist', 'build-info.json'));
  cached = {
    version: typeof pkg?.version === 'string' ? pkg.version : 'unknown',
    commit: typeof built?.commit === 'string' ? built.commit : 'unknown',
    node: process.version,
  };
  return cached;
}
