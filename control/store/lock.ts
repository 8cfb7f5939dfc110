// One control plane per data dir: an exclusive lock file holding the owner's pid and start time.
// The owner counts as alive only while that very process runs — as a kernel flock(2) would be
// released when its holder dies: a pid that is gone, a zombie (killed but not yet reaped by its
// parent, e.g. a supervisor about to restart it) or a pid reused by another process (different
// start time) leaves a stale lock, which the next start takes over at once. A live owner is
// named in the error. (Node has no flock(2) binding, and the control plane does not load the
// native addon; /proc gives the same answer for this purpose.)
import { closeSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { StoreUnavailableError } from './errors';

const held = new Set<string>();

interface ProcState {
  /** One-letter state from /proc/PID/stat (R, S, D, Z, X, …). */
  readonly state: string;
  /** Start time in clock ticks since boot (field 22). */
  readonly startTime: string;
}

/** /proc/PID/stat's state and start time; undefined when the pid is gone or /proc is absent. */
function procState(pid: number): ProcState | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) may hold spaces and parentheses: split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0] ?? '', startTime: rest[19] ?? '' };
}

const hasProc = (): boolean => procState(process.pid) !== undefined;

/** The line this process writes into the lock: "<pid> <start time>". */
function ownerLine(): string {
  return `${process.pid} ${procState(process.pid)?.startTime ?? ''}`.trim() + '\n';
}

/** True while the process that wrote `line` still runs (not a zombie, not a reused pid). */
export function ownerAlive(line: string): boolean {
  const [pidText, startTime] = line.trim().split(/\s+/);
  const pid = Number.parseInt(pidText ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (hasProc()) {
    const p = procState(pid);
    if (!p || p.state === 'Z' || p.state === 'X') return false;
    return startTime === undefined || startTime === p.startTime;
  }
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
        writeSync(fd, ownerLine());
        closeSync(fd);
        held.add(path);
        return new DataDirLock(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new StoreUnavailableError(`cannot create the lock file ${path}: ${(err as Error).message}; check that the data dir is writable`);
        }
      }
      let line: string;
      try {
        line = readFileSync(path, 'utf8');
      } catch {
        continue; // removed meanwhile: try again
      }
      const owner = Number.parseInt(line, 10);
      const ours = owner === process.pid && held.has(path);
      if (ownerAlive(line) && (owner !== process.pid || ours)) {
        throw new StoreUnavailableError(
          `the data dir ${dataDir} is in use by another nodemesh control plane (pid ${owner}); stop it or give this one another --data-dir`,
        );
      }
      // Stale: the owner is gone. Replace the lock atomically so two newcomers cannot both win.
      const tmp = `${path}.${process.pid}`;
      try {
        const fd = openSync(tmp, 'w', 0o600);
        writeSync(fd, ownerLine());
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
