// Host tools the VM runner needs, installed with apt-get when missing (as scripts/setup.sh does for
// the build), and a small synchronous command helper for the runner's short steps.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** command -> the Debian/Ubuntu package that provides it */
const TOOLS: Record<string, string> = {
  'qemu-system-x86_64': 'qemu-system-x86',
  busybox: 'busybox-static',
  cpio: 'cpio',
  zstd: 'zstd',
  xz: 'xz-utils',
  depmod: 'kmod',
  'dpkg-deb': 'dpkg',
  flock: 'util-linux',
};
const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v "$0" >/dev/null || [ -x "/usr/sbin/$0" ] || [ -x "/sbin/$0" ]`, cmd]).status === 0;
}

/** Runs a command, returns its stdout; throws with the command and its stderr when it fails. */
export function run(cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, input: opts.input, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) {
    const why = (r.stderr || r.stdout || '').trim().split('\n').slice(-5).join('\n');
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}: ${why}`);
  }
  return r.stdout;
}

/**
 * Installs what is missing of qemu, a static busybox, cpio, zstd, xz, kmod and Debian's archive
 * keyring (to verify the kernel packages). Throws with the package list when apt-get is missing.
 */
export function ensureHostTools(log: (line: string) => void): void {
  const missing = new Set<string>();
  for (const [cmd, pkg] of Object.entries(TOOLS)) if (!hasCommand(cmd)) missing.add(pkg);
  if (hasCommand('busybox') && !isStatic('busybox')) missing.add('busybox-static');
  if (!existsSync(KEYRING)) missing.add('debian-archive-keyring');
  if (!missing.size) return;
  const pkgs = [...missing].sort();
  if (!hasCommand('apt-get')) throw new Error(`the VM runner needs ${pkgs.join(' ')} (Debian/Ubuntu names); install them and run again`);
  log(`installing ${pkgs.join(' ')} with apt-get`);
  run('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '-q', '--no-install-recommends', ...pkgs]);
}

export const DEBIAN_KEYRING = KEYRING;

/** Whether the command is a static executable (the initramfs has no shared libraries). */
export function isStatic(cmd: string): boolean {
  const path = commandPath(cmd);
  const ldd = spawnSync('ldd', [path], { encoding: 'utf8' });
  return `${ldd.stdout}${ldd.stderr}`.includes('not a dynamic executable');
}

export function commandPath(cmd: string): string {
  return spawnSync('sh', ['-c', 'command -v "$0"', cmd], { encoding: 'utf8' }).stdout.trim();
}
