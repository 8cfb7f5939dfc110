// Making and removing a waypoint's pod in the lab: a netns with a veth on its node's pod bridge, a
// cgroup under the lab's, and the record under <state dir>/waypoints/ (so `lab exec`, `lab status`
// and `lab down` find it). Removing a pod first stops the processes recorded in it.
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { forgetLabProcess, forgetWaypointPod, readLabProcesses, writeWaypointPod, type LabTopology, type LabWaypointPod } from '../state';
import { cgroupPids, ipBatch, isSameProcess, listNetns, run, sleep } from '../sys';
import { podBatch } from '../topology';
import { waypointNodeLines } from './plan';

export async function createWaypointPod(t: LabTopology, w: LabWaypointPod): Promise<void> {
  // Recorded first: a half-made pod is still found (and removed) by name.
  writeWaypointPod(t.lab, w);
  const node = t.nodes.find((n) => n.name === w.pod.node);
  if (!node) throw new Error(`lab '${t.lab}' has no node '${w.pod.node}'`);
  if (listNetns().includes(w.pod.netns)) await run('ip', ['netns', 'del', w.pod.netns]); // a leftover of an earlier run
  await run('ip', ['netns', 'add', w.pod.netns]);
  await ipBatch(node.netns, waypointNodeLines(t, w));
  await ipBatch(w.pod.netns, podBatch(w.pod).lines);
  mkdirSync(w.pod.cgroup, { recursive: true });
}

/** Stops what runs in the pod (SIGTERM, then SIGKILL after 3 s) and removes its netns, cgroup and record. */
export async function removeWaypointPod(t: LabTopology, w: LabWaypointPod): Promise<void> {
  const procs = readLabProcesses(t.lab).filter((p) => p.place === w.pod.name && isSameProcess(p.pid, p.startTime));
  const pids = new Set([...procs.map((p) => p.pid), ...cgroupPids(w.pod.cgroup)]);
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = Date.now() + 3000;
  while ([...pids].some(alive) && Date.now() < deadline) await sleep(50);
  for (const pid of pids) if (alive(pid)) signal(pid, 'SIGKILL');
  for (const p of procs) forgetLabProcess(t.lab, p.pid);
  if (listNetns().includes(w.pod.netns)) await run('ip', ['netns', 'del', w.pod.netns]); // its veth goes with it
  for (let i = 0; i < 40 && existsSync(w.pod.cgroup); i++) {
    try {
      rmdirSync(w.pod.cgroup);
    } catch {
      await sleep(50); // EBUSY until the killed tasks are reaped
    }
  }
  forgetWaypointPod(t.lab, w.gateway);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

function alive(pid: number): boolean {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); // a zombie counts as gone
  } catch {
    return false;
  }
}
