// bpftool calls tests share, with what differs between kernels handled once.
import { execFileSync } from 'node:child_process';

/**
 * `bpftool cgroup show <cgroup>`: the programs attached to that cgroup, as bpftool prints them.
 * bpftool 7.1 (Debian 12) exits 255 on Linux 5.10 when a program is attached (it queries attach
 * types 5.10 does not know); `… effective` works there, and lists the cgroup's own programs plus
 * those inherited from its parents (none, for the cgroups tests create under an empty parent).
 */
export function cgroupPrograms(cgroup: string): string {
  try {
    return execFileSync('bpftool', ['cgroup', 'show', cgroup], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    return execFileSync('bpftool', ['cgroup', 'show', cgroup, 'effective'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }
}
