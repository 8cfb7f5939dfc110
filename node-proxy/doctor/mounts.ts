// Finding the cgroup v2 mount and the bpffs from /proc/mounts (never hard-coded: on hybrid hosts
// cgroup2 is at /sys/fs/cgroup/unified), and mounting the bpffs when it is missing.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';

export interface Mount {
  readonly source: string;
  readonly target: string;
  readonly fstype: string;
}

/** Parses /proc/mounts text (octal escapes such as \040 for spaces are decoded). */
export function parseMounts(text: string): Mount[] {
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 3) continue;
    out.push({ source: unescape(f[0]), target: unescape(f[1]), fstype: f[2] });
  }
  return out;
}

export function readMounts(): Mount[] {
  return parseMounts(readFileSync('/proc/mounts', 'utf8'));
}

/** The cgroup v2 mount point, or undefined when there is none. The shortest path wins. */
export function findCgroup2(mounts: readonly Mount[]): string | undefined {
  return mounts
    .filter((m) => m.fstype === 'cgroup2')
    .map((m) => m.target)
    .sort((a, b) => a.length - b.length)[0];
}

export function bpffsMounted(mounts: readonly Mount[], at = '/sys/fs/bpf'): boolean {
  return mounts.some((m) => m.fstype === 'bpf' && m.target === at);
}

/** Mounts the bpffs at /sys/fs/bpf when it is not there; returns what it did. */
export function ensureBpffs(at = '/sys/fs/bpf'): 'present' | 'mounted' {
  if (bpffsMounted(readMounts(), at)) return 'present';
  mkdirSync(at, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'bpf', 'bpf', at], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`the bpffs is not mounted at ${at} and mounting it failed (${stderr || (err as Error).message}); run 'mount -t bpf bpf ${at}' as root`);
  }
  return 'mounted';
}
