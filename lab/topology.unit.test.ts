import { describe, expect, it } from 'vitest';
import { allCgroups, allNetns, bridgeMac, checkShape, podMac, nodeBatch, planLab, podBatch, underlayBatch, controlBatch } from './topology';

describe('lab topology plan', () => {
  const t = planLab({ lab: 'lab', nodes: 3, podsPerNode: 2 }, '/sys/fs/cgroup/unified', new Date(0));

  it('names every netns and cgroup with the nm-<lab> prefix', () => {
    expect(allNetns(t)).toEqual([
      'nm-lab-underlay',
      'nm-lab-control',
      'nm-lab-node1',
      'nm-lab-node2',
      'nm-lab-node3',
      'nm-lab-pod1-1',
      'nm-lab-pod1-2',
      'nm-lab-pod2-1',
      'nm-lab-pod2-2',
      'nm-lab-pod3-1',
      'nm-lab-pod3-2',
    ]);
    for (const cg of allCgroups(t)) expect(cg.startsWith('/sys/fs/cgroup/unified/nm-lab')).toBe(true);
    expect(t.nodes[1]?.bpffsDir).toBe('/sys/fs/bpf/nodemesh/lab-node2');
  });

  it('addresses: nodes 10.199.0.N, pods 10.200.N.(K+1) behind 10.200.N.1, control 10.199.0.254', () => {
    expect(t.nodes.map((n) => n.underlayIp)).toEqual(['10.199.0.1', '10.199.0.2', '10.199.0.3']);
    expect(t.pods.filter((p) => p.node === 'node2').map((p) => [p.ip, p.gateway])).toEqual([
      ['10.200.2.2', '10.200.2.1'],
      ['10.200.2.3', '10.200.2.1'],
    ]);
    expect(t.control.ip).toBe('10.199.0.254');
  });

  it('routes each node to the other nodes pod ranges and keeps link names within IFNAMSIZ', () => {
    const b = nodeBatch(t, t.nodes[0]!); // plan has 3 nodes
    expect(b.netns).toBe('nm-lab-node1');
    expect(b.lines.filter((l) => l.startsWith('route'))).toEqual(['route add 10.200.2.0/24 via 10.199.0.2', 'route add 10.200.3.0/24 via 10.199.0.3']);
    expect(b.lines).toContain('link add nm-pod1-2 type veth peer name eth0 netns nm-lab-pod1-2');
    expect(controlBatch(t).lines.filter((l) => l.startsWith('route'))).toHaveLength(3);
    expect(podBatch(t.pods[0]!).lines).toContain('route add default via 10.200.1.1');
    const big = planLab({ lab: 'abcdefgh', nodes: 50, podsPerNode: 100 }, '/cg');
    const names = [...underlayBatch(big).lines, ...big.nodes.flatMap((n) => nodeBatch(big, n).lines)]
      .flatMap((l) => /^link add (\S+) type (?:veth peer name (\S+)|bridge)/.exec(l)?.slice(1) ?? [])
      .filter(Boolean);
    expect(names.length).toBeGreaterThan(100);
    for (const n of names) expect(n.length).toBeLessThanOrEqual(15);
    // 100 pods per node still fit the node's /24, one address each
    const node50 = big.pods.filter((p) => p.node === 'node50');
    expect(node50).toHaveLength(100);
    expect(new Set(node50.map((p) => p.ip)).size).toBe(100);
    expect(node50.at(-1)?.ip).toBe('10.200.50.101');
  });

  it('gives every bridge a MAC of its own, so a port added or removed later (a waypoint pod) never changes it', () => {
    const lines = [...underlayBatch(t).lines, ...t.nodes.flatMap((n) => nodeBatch(t, n).lines)];
    const set = lines.flatMap((l) => /^link set (\S+) address (\S+)$/.exec(l)?.slice(1, 3) ?? []);
    expect(set).toEqual(['nm-ul', '02:6e:6d:00:00:01', 'nm-pods', '02:6e:6d:01:00:01', 'nm-pods', '02:6e:6d:01:00:02', 'nm-pods', '02:6e:6d:01:00:03']);
    // set before any port joins (and before the bridge is up)
    const b = nodeBatch(t, t.nodes[1]!).lines;
    expect(b.indexOf('link set nm-pods address 02:6e:6d:01:00:02')).toBeLessThan(b.findIndex((l) => l.includes('master nm-pods')));
    expect(bridgeMac({ node: 300 })).toBe('02:6e:6d:01:01:2c');
    // a pod's MAC follows its address (a waypoint pod made again at the same address keeps it)
    expect(podMac('10.200.2.201')).toBe('02:6e:6d:02:02:c9');
    expect(podMac('10.200.50.101')).toBe('02:6e:6d:02:32:65');
    expect(() => podMac('10.200.2')).toThrow(/not an IPv4 address/);
  });

  it('refuses shapes out of range with the flag name', () => {
    expect(() => checkShape({ lab: 'lab', nodes: 0, podsPerNode: 1 })).toThrow(/--nodes must be a whole number from 1 to 50/);
    expect(() => checkShape({ lab: 'lab', nodes: 1, podsPerNode: 101 })).toThrow(/--pods-per-node must be a whole number from 1 to 100/);
    expect(() => checkShape({ lab: 'LAB', nodes: 1, podsPerNode: 1 })).toThrow(/lab name/);
  });
});
