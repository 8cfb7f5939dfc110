import { describe, expect, it } from 'vitest';
import { keyFromPinDir, linkPinPath, nodeLayout, workloadPinDir } from './pins';

describe('pin layout', () => {
  it('puts a node under /sys/fs/bpf/nodemesh/<node> and a workload under workloads/<ns>_<name>', () => {
    const l = nodeLayout('node1');
    expect(l.pinRoot).toBe('/sys/fs/bpf/nodemesh/node1');
    expect(linkPinPath(l, 'default/pod1-1', 'connect4')).toBe('/sys/fs/bpf/nodemesh/node1/workloads/default_pod1-1/connect4');
    expect(l.recordsFile).toMatch(/node-proxy\/node1\/enrolment.json$/);
  });

  it('never writes a dot into the bpffs (it refuses such names) and reads the names back', () => {
    const l = nodeLayout('worker.example.com');
    expect(l.pinRoot).toBe('/sys/fs/bpf/nodemesh/worker+example+com');
    const dir = workloadPinDir(l, 'shop/web.v2');
    expect(dir.endsWith('/shop_web+v2')).toBe(true);
    expect(keyFromPinDir('shop_web+v2')).toBe('shop/web.v2');
    expect(keyFromPinDir('stray')).toBeUndefined();
  });

  it('refuses node names that are not DNS-like', () => {
    expect(() => nodeLayout('../etc')).toThrow(/node name/);
  });
});
