// Where the project's built artifacts live, found from this file's location so that it works from
// the source tree (vitest) and from dist/ alike.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

function findRoot(start: string): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'scripts', 'setup.sh'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the nodemesh project root above ${start}`);
    dir = parent;
  }
}

export const projectRoot: string = findRoot(__dirname);
export const bpfObjectDir: string = join(projectRoot, 'bpf', 'build');
export const cliEntry: string = join(projectRoot, 'dist', 'cli', 'main.js');
