import { rmSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it, vi } from 'vitest';
import * as s from './state';
import { checkLabName, type LabTopology } from './state';

// vi.hoisted runs before the imports above are evaluated: ./state then reads this temp dir as its root.
const root = vi.hoisted(() => {
  const fs = require('node:fs') as typeof import('node:fs');
  const dir = fs.mkdtempSync(require('node:path').join(require('node:os').tmpdir(), 'nm-state-'));
  process.env.NODEMESH_LAB_STATE_ROOT = dir;
  return dir as string;
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('lab state file', () => {
  it('refuses bad lab names with a hint', () => {
    expect(checkLabName('lab2')).toBe('lab2');
    expect(() => checkLabName('Lab')).toThrow(/a-z and 0-9/);
    expect(() => checkLabName('toolongname')).toThrow(/1-8 characters/);
    expect(() => checkLabName('a-b')).toThrow();
  });

  it('round-trips the topology and recorded processes; reports a missing lab', () => {
    expect(s.LAB_STATE_ROOT).toBe(root);
    expect(s.tryLoadLabState('nmu1')).toBeUndefined();
    expect(() => s.loadLabState('nmu1')).toThrow(/lab up --lab nmu1/);
    const topo: LabTopology = {
      version: 1,
      lab: 'nmu1',
      phase: 'creating',
      createdAt: new Date().toISOString(),
      cgroupMount: '/sys/fs/cgroup/unified',
      cgroupRoot: '/sys/fs/cgroup/unified/nm-nmu1',
      underlay: { netns: 'nm-nmu1-underlay', netnsPath: '/run/netns/nm-nmu1-underlay', bridge: 'nm-ul', cidr: '10.199.0.0/24' },
      nodes: [],
      pods: [],
      control: { name: 'control', netns: 'nm-nmu1-control', netnsPath: '/run/netns/nm-nmu1-control', ip: '10.199.0.254', ifName: 'nm-ul', cgroup: '/x' },
    };
    s.writeLabTopology(topo);
    expect(() => s.loadLabState('nmu1')).toThrow(/incomplete/);
    s.writeLabTopology({ ...topo, phase: 'ready' });
    s.recordLabProcess('nmu1', { name: 'echo', place: 'control', pid: 4242, startTime: '1', argv: ['x'], startedAt: new Date().toISOString() });
    const st = s.loadLabState('nmu1');
    expect(st.control.ip).toBe('10.199.0.254');
    expect(st.processes.map((p) => p.pid)).toEqual([4242]);
    expect(s.findPlace(st, 'control').kind).toBe('control');
    expect(() => s.findPlace(st, 'nope')).toThrow(/known: control/);
    s.forgetLabProcess('nmu1', 4242);
    expect(s.loadLabState('nmu1').processes).toEqual([]);
    writeFileSync(s.labStatePath('nmu1'), '{"version": 1, "lab": "nmu1"');
    expect(() => s.readLabTopology('nmu1')).toThrow(/is not JSON .*lab down --lab nmu1/);
    writeFileSync(s.labStatePath('nmu1'), '{"version": 1, "lab": "nmu1"}');
    expect(() => s.readLabTopology('nmu1')).toThrow(/is not valid \(phase:/);
    s.removeLabStateDir('nmu1');
    expect(s.tryLoadLabState('nmu1')).toBeUndefined();
  });
});
