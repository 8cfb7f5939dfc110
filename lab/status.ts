// `lab status` and the summary `lab up` prints: what the lab is made of and what runs where.
import { existsSync } from 'node:fs';
import { relative } from 'node:path';
import { formatTable } from '../common/table';
import type { LabProcess, LabState, LabTopology } from './state';
import { isSameProcess, listNetns } from './sys';

export interface ProcessStatus extends LabProcess {
  alive: boolean;
}

export function processStatus(state: LabState): ProcessStatus[] {
  return state.processes.map((p) => ({ ...p, alive: isSameProcess(p.pid, p.startTime) }));
}

export function describeTopology(t: LabTopology): string {
  const ns = new Set(listNetns());
  const mark = (present: boolean): string => (present ? '' : ' (MISSING)');
  const cg = (path: string): string => relative(t.cgroupMount, path) + mark(existsSync(path));
  const rows: string[][] = [];
  rows.push(['underlay', '-', t.underlay.cidr, t.underlay.netns + mark(ns.has(t.underlay.netns)), '-']);
  rows.push(['control', '-', t.control.ip, t.control.netns + mark(ns.has(t.control.netns)), cg(t.control.cgroup)]);
  for (const n of t.nodes) {
    rows.push([n.name, '-', `${n.underlayIp} pods ${n.podCidr}`, n.netns + mark(ns.has(n.netns)), cg(n.cgroup)]);
    for (const p of t.pods.filter((x) => x.node === n.name)) rows.push([p.name, n.name, p.ip, p.netns + mark(ns.has(p.netns)), cg(p.cgroup)]);
  }
  return (
    `lab '${t.lab}' (${t.phase}), cgroups under ${t.cgroupMount}, bpffs under /sys/fs/bpf/nodemesh/${t.lab}-<node>\n` +
    formatTable(['NAME', 'NODE', 'ADDRESS', 'NETNS', 'CGROUP'], rows)
  );
}

export function describeProcesses(state: LabState): string {
  const procs = processStatus(state);
  if (procs.length === 0) return 'no recorded processes\n';
  return formatTable(
    ['PROCESS', 'WHERE', 'PID', 'STATE', 'COMMAND'],
    procs.map((p) => [p.name, p.place, String(p.pid), p.alive ? 'running' : 'gone', p.argv.join(' ')]),
  );
}
