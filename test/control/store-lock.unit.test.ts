// The data-dir lock as a restart after a crash meets it: a control plane SIGKILLed and not yet
// reaped by its parent (a zombie, as a supervisor sees it for a moment) no longer holds the lock,
// so its replacement starts at once; a live owner is still refused. The owner runs the built
// lock (dist/) in a child process.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { projectRoot } from '../../common/paths';
import { DataDirLock } from '../../control/store/lock';

const distLock = join(projectRoot, 'dist', 'control', 'store', 'lock.js');
const child = `
const { DataDirLock } = require(process.argv[1]);
DataDirLock.acquire(process.argv[2]);
process.stdout.write('locked\\n');
setInterval(() => undefined, 1000);
`;

const dirs: string[] = [];
const procs: ChildProcess[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function owner(dir: string): Promise<ChildProcess> {
  if (!existsSync(distLock)) throw new Error(`${distLock} is missing: run 'bash scripts/setup.sh' to build first`);
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', child, distLock, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(p);
    p.on('error', reject);
    p.stdout.once('data', () => resolve(p));
  });
}

function procStateOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

describe('DataDirLock against a real owner process', () => {
  it('refuses while the owner runs, and is taken at once when the owner is a zombie', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nm-lock-'));
    dirs.push(dir);
    const p = await owner(dir);
    expect(() => DataDirLock.acquire(dir)).toThrow(new RegExp(`in use by another nodemesh control plane \\(pid ${p.pid}\\)`));

    // SIGKILL, then look before the event loop turns: libuv has not reaped the child yet.
    p.kill('SIGKILL');
    const deadline = Date.now() + 2_000;
    while (procStateOf(p.pid!) !== 'Z' && Date.now() < deadline) {
      // busy-wait (synchronously) for the kernel to finish the kill
    }
    expect(procStateOf(p.pid!)).toBe('Z');
    const lock = DataDirLock.acquire(dir); // before the fix: "in use … (pid N)" until reaped
    expect(readFileSync(join(dir, 'store.lock'), 'utf8')).toMatch(new RegExp(`^${process.pid} \\d+\\n$`));
    lock.release();
  });

  it('takes over a lock whose pid now belongs to another process (start time differs)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nm-lock-'));
    dirs.push(dir);
    // pid 1 runs, but it is not the process that wrote this lock (start time 1 tick after boot)
    writeFileSync(join(dir, 'store.lock'), '1 1\n');
    const lock = DataDirLock.acquire(dir);
    lock.release();
  });
});
