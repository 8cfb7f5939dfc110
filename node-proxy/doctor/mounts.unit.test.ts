import { describe, expect, it } from 'vitest';
import { bpffsMounted, findCgroup2, parseMounts } from './mounts';

const hybrid = `tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
bpf /sys/fs/bpf bpf rw,relatime 0 0
none /mnt/with\\040space tmpfs rw 0 0
`;

describe('mounts', () => {
  it('finds cgroup v2 on a hybrid host and on a unified one', () => {
    expect(findCgroup2(parseMounts(hybrid))).toBe('/sys/fs/cgroup/unified');
    expect(findCgroup2(parseMounts('cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n'))).toBe('/sys/fs/cgroup');
    expect(findCgroup2(parseMounts('cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n'))).toBeUndefined();
  });

  it('sees the bpffs and decodes escaped paths', () => {
    const m = parseMounts(hybrid);
    expect(bpffsMounted(m)).toBe(true);
    expect(bpffsMounted(parseMounts('cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n'))).toBe(false);
    expect(m.map((x) => x.target)).toContain('/mnt/with space');
  });
});
