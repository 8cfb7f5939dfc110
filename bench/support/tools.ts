// The system tools a benchmark runs: installed with apt-get when missing (root on Debian/Ubuntu),
// otherwise a clear error naming the packages.
import { execFileSync } from 'node:child_process';

function onPath(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** `tools` maps a command to the Debian package that provides it. */
export function ensureTools(tools: Record<string, string>, say: (m: string) => void): void {
  const missing = Object.keys(tools).filter((c) => !onPath(c));
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((c) => tools[c]!))];
  const root = typeof process.getuid !== 'function' || process.getuid() === 0;
  if (!root || !onPath('apt-get'))
    throw new Error(
      `the benchmark needs ${missing.join(', ')} on the PATH; install the packages ${pkgs.join(' ')} (as root: apt-get install -y ${pkgs.join(' ')})`,
    );
  say(`installing ${pkgs.join(' ')} (apt-get)`);
  const apt = (args: string[]): void =>
    void execFileSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', ...args], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  try {
    apt(['install', '-y', '-qq', '--no-install-recommends', ...pkgs]);
  } catch {
    apt(['update', '-qq']); // a fresh machine may have no package lists yet
    apt(['install', '-y', '-qq', '--no-install-recommends', ...pkgs]);
  }
  const still = missing.filter((c) => !onPath(c));
  if (still.length) throw new Error(`apt-get installed ${pkgs.join(' ')} but ${still.join(', ')} is still not on the PATH`);
}
