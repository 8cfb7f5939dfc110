// A real process killed (SIGKILL) between writing the store's temp file and renaming it: the next
// start sees the old state, removes the temp file and takes over the dead process's lock.
// Runs the built store (dist/) in a child process.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { projectRoot } from '../../common/paths';
import { FileStore, STATE_FILE } from '../../control/store/file-store';

const distStore = join(projectRoot, 'dist', 'control', 'store', 'file-store.js');

// The child applies one Service normally, then a second write whose rename it never reaches.
const child = `
const { FileStore } = require(process.argv[1]);
(async () => {
  let die = false;
  const store = await FileStore.open({ dataDir: process.argv[2], crashBeforeRename: () => { if (die) process.kill(process.pid, 'SIGKILL'); } });
  await store.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { ports: [{ port: 80 }] } });
  die = true;
  await store.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { ports: [{ port: 9999 }] } });
  process.exit(3); // not reached
})();
`;

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('FileStore crash between write and rename (real process)', () => {
  it('leaves the old state intact for the next start', async () => {
    if (!existsSync(distStore)) throw new Error(`${distStore} is missing: run 'bash scripts/setup.sh' to build first`);
    const dir = mkdtempSync(join(tmpdir(), 'nm-crash-'));
    dirs.push(dir);
    const signal = await new Promise<NodeJS.Signals | null>((resolve, reject) => {
      const p = spawn(process.execPath, ['-e', child, distStore, dir], { stdio: ['ignore', 'ignore', 'inherit'] });
      p.on('error', reject);
      p.on('exit', (_code, sig) => resolve(sig));
    });
    expect(signal).toBe('SIGKILL');
    const temps = readdirSync(dir).filter((f) => f.startsWith(`${STATE_FILE}.tmp-`));
    expect(temps).toHaveLength(1);
    expect(readFileSync(join(dir, temps[0]), 'utf8')).toContain('9999');
    expect(existsSync(join(dir, 'store.lock'))).toBe(true);

    const store = await FileStore.open({ dataDir: dir });
    try {
      expect(store.revision).toBe(2);
      expect(store.snapshot().get('Service', 'web', 'default')?.spec.ports[0].port).toBe(80);
      expect(readdirSync(dir).filter((f) => f.startsWith(`${STATE_FILE}.tmp-`))).toEqual([]);
      expect(
        (await store.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { ports: [{ port: 81 }] } })).resource.metadata
          .resourceVersion,
      ).toBe('3');
    } finally {
      await store.close();
    }
  });
});
