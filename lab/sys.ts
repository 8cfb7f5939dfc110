// Thin, typed wrappers over the system tools the lab drives (iproute2, nsenter) and the kernel
// files it reads (/proc/mounts, /proc/PID/stat, cgroup v2). No shell strings: every command is an
// argv array run with execFile, so names from users never reach a shell.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';

export class SysError extends Error {
  override name = 'SysError';
}

/** Runs a command, resolves with its stdout; rejects with the command line and its stderr. */
export function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const what = `${cmd} ${args.join(' ')}`;
        reject(new SysError(`'${what}' failed: ${(stderr || err.message).trim()}`));
      } else resolve(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Runs iproute2 commands in one process (`ip -batch -`), inside a netns when one is named. */
export function ipBatch(netns: string | undefined, lines: string[], force = false): Promise<string> {
  if (lines.length === 0) return Promise.resolve('');
  const args = [...(netns ? ['-n', netns] : []), ...(force ? ['-force'] : []), '-batch', '-'];
  return run('ip', args, lines.join('\n') + '\n');
}

/** Names of the network namespaces under /run/netns. */
export function listNetns(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

/** The cgroup v2 mount point from /proc/mounts (on hybrid hosts /sys/fs/cgroup/unified). */
export function cgroup2Mount(): string {
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n');
  for (const line of mounts) {
    const f = line.split(' ');
    if (f[2] === 'cgroup2' && f[1]) return f[1].replace(/\\040/g, ' ');
  }
  throw new SysError(
    'no cgroup v2 mount in /proc/mounts: the lab needs cgroup v2 (mount -t cgroup2 none /sys/fs/cgroup/unified, or boot with systemd.unified_cgroup_hierarchy)',
  );
}

export const BPFFS = '/sys/fs/bpf';

/** Mounts the bpffs at /sys/fs/bpf when it is not mounted yet. */
export async function ensureBpffs(): Promise<void> {
  const mounted = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === BPFFS && l.split(' ')[2] === 'bpf');
  if (mounted) return;
  mkdirSync(BPFFS, { recursive: true });
  await run('mount', ['-t', 'bpf', 'bpf', BPFFS]);
}

/** Field 22 of /proc/PID/stat (start time in clock ticks), or undefined when the pid is gone. */
export function procStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) may hold spaces and parentheses: split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return rest[19]; // fields 3.. start at index 0, so field 22 is index 19
}

/** True when pid runs and is the same process that was recorded (start time matches). */
export function isSameProcess(pid: number, startTime: string): boolean {
  return procStartTime(pid) === startTime;
}

/** Pids in a cgroup v2 directory (not its children). */
export function cgroupPids(dir: string): number[] {
  try {
    return readFileSync(`${dir}/cgroup.procs`, 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** A cgroup directory and all its descendants, deepest first. */
export function cgroupTreeDeepestFirst(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries: import('node:fs').Dirent[] = [];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) walk(`${d}/${e.name}`);
    out.push(d);
  };
  walk(dir);
  return out;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
