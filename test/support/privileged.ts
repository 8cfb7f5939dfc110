// Privileged test tiers (docs/architecture.md "Tests"). `privilegedDescribe('kernel', …)` runs the suite when
// the machine can (root, cgroup v2, bpffs) and otherwise skips it with the reason; under CI=true a
// skip is not allowed, so the suite instead fails with the same reason.
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'vitest';

export type Tier = 'kernel' | 'lab';

/** Why this machine cannot run privileged tests, or undefined when it can. */
export function privilegeGap(): string | undefined {
  if (process.platform !== 'linux') return `privileged tests need Linux, this is ${process.platform}`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'privileged tests need root (run with sudo)';
  let mounts = '';
  try {
    mounts = readFileSync('/proc/mounts', 'utf8');
  } catch {
    return 'cannot read /proc/mounts';
  }
  if (!/\scgroup2\s/.test(mounts)) return 'no cgroup v2 mount in /proc/mounts (Linux >= 5.10 with cgroup2 mounted is needed)';
  if (!existsSync('/sys/fs/bpf') && !/\sbpf\s/.test(mounts)) return 'no bpffs mount point at /sys/fs/bpf';
  return undefined;
}

export function privilegedDescribe(tier: Tier, name: string, body: () => void): void {
  const gap = privilegeGap();
  if (!gap) {
    describe(`[${tier}] ${name}`, body);
    return;
  }
  if (process.env.CI === 'true') {
    describe(`[${tier}] ${name}`, () => {
      it('runs (a privileged test may not be skipped under CI=true)', () => {
        throw new Error(`privileged ${tier} test cannot run under CI: ${gap}`);
      });
    });
    return;
  }
  describe.skip(`[${tier}] ${name} — skipped: ${gap}`, body);
}
