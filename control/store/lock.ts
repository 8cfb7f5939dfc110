// One control plane per data dir: an exclusive lock file holding the owner's pid. A lock left by a
// process that no longer runs (a crash) is taken over; a live owner is named in the error.
import { closeSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { StoreUnavailableError } from './errors';

const held = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class DataDirLock {
  private constructor(readonly path: string) {}

  static acquire(dataDir: string): DataDirLock {
    const path = join(dataDir, 'store.lock');
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = openSync(path, 'wx', 0o600);
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        held.add(path);
        return new DataDirLock(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new StoreUnavailableError(`cannot create the lock file ${path}: ${(err as Error).message}; check that the data dir is writable`);
        }
      }
      let owner = NaN;
      try {
        owner = Number.parseInt(readFileSync(path, 'utf8'), 10);
      } catch {
        continue; // removed meanwhile: try again
      }
      const ours = owner === process.pid && held.has(path);
      if (Number.isInteger(owner) && alive(owner) && (owner !== process.pid || ours)) {
        throw new StoreUnavailableError(
          `the data dir ${dataDir} is in use by another nodemesh control plane (pid ${owner}); stop it or give this one another --data-dir`,
        );
      }
      // Stale: the owner is gone. Replace the lock atomically so two newcomers cannot both win.
      const tmp = `${path}.${process.pid}`;
      try {
        const fd = openSync(tmp, 'w', 0o600);
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        renameSync(tmp, path);
        if (Number.parseInt(readFileSync(path, 'utf8'), 10) === process.pid) {
          held.add(path);
          return new DataDirLock(path);
        }
      } catch {
        // fall through and retry
      }
    }
    throw new StoreUnavailableError(`cannot lock the data dir ${dataDir}: the lock file ${path} keeps changing`);
  }

  /** Gives the lock up (normal shutdown). */
  release(): void {
    held.delete(this.path);
    try {
      if (Number.parseInt(readFileSync(this.path, 'utf8'), 10) === process.pid) unlinkSync(this.path);
    } catch {
      // already gone
    }
  }

  /** Forgets the lock without removing the file, as a crashed process would (tests). */
  abandon(): void {
    held.delete(this.path);
  }
}
