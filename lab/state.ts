// The lab's state file: what `nodemesh lab up` made (netns, addresses, cgroups, bpffs dirs) and the
// long-running processes started inside it. Other components (the node proxy's capture, tests, the
// demo) read it with loadLabState() to find a pod's netns and cgroup. Pure types + file I/O only.
//
// Layout: /run/nodemesh/labs/<lab>/state.json (written atomically: tmp file + rename) and one file
// per recorded process in /run/nodemesh/labs/<lab>/procs/<pid>.json (one writer per file, so
// concurrent spawns never race on state.json).
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

export const LAB_STATE_ROOT = process.env.NODEMESH_LAB_STATE_ROOT ?? '/run/nodemesh/labs';
export const DEFAULT_LAB = 'lab';
export const LAB_NAME_RE = /^[a-z0-9]{1,8}$/;

const processSchema = z.object({
  /** A label for humans ("echo", "node-proxy"). */
  name: z.string(),
  /** Where it runs: a pod, node or control host name. */
  place: z.string(),
  pid: z.number().int().positive(),
  /** Field 22 of /proc/PID/stat (clock ticks since boot): guards against pid reuse. */
  startTime: z.string(),
  argv: z.array(z.string()),
  startedAt: z.string(),
});

const podSchema = z.object({
  name: z.string(), // e.g. "pod1-2" (node 1, pod 2)
  node: z.string(), // e.g. "node1"
  index: z.number().int(), // K within the node, from 1
  netns: z.string(), // "nm-<lab>-<pod>", a name under /run/netns
  netnsPath: z.string(), // "/run/netns/nm-<lab>-<pod>"
  ip: z.string(), // 10.200.N.(K+1)
  cidr: z.string(), // 10.200.N.0/24
  gateway: z.string(), // 10.200.N.1 (the node's pod bridge)
  ifName: z.string(), // the pod's interface ("eth0")
  hostIfName: z.string(), // the veth end on the node's pod bridge ("nm-<pod>")
  /** Absolute path of the pod's cgroup v2 directory: <cgroup2 mount>/nm-<lab>/<pod>. */
  cgroup: z.string(),
});

const nodeSchema = z.object({
  name: z.string(), // "node1"
  index: z.number().int(), // N, from 1
  netns: z.string(), // "nm-<lab>-<node>"
  netnsPath: z.string(),
  underlayIp: z.string(), // 10.199.0.N
  underlayIfName: z.string(), // the node's link to the underlay bridge ("nm-ul")
  podBridge: z.string(), // "nm-pods"
  podCidr: z.string(), // 10.200.N.0/24
  podGateway: z.string(), // 10.200.N.1
  /** cgroup for the node's own daemons (node proxy): <cgroup2>/nm-<lab>/<node>. Pods are not in it. */
  cgroup: z.string(),
  /** Where this node's BPF programs and maps are pinned: /sys/fs/bpf/nodemesh/<lab>-<node>. */
  bpffsDir: z.string(),
  pods: z.array(z.string()),
});

const controlSchema = z.object({
  name: z.literal('control'),
  netns: z.string(), // "nm-<lab>-control"
  netnsPath: z.string(),
  ip: z.string(), // 10.199.0.254
  ifName: z.string(),
  cgroup: z.string(),
});

const stateSchema = z.object({
  version: z.literal(1),
  lab: z.string().regex(LAB_NAME_RE),
  /** "creating" until `lab up` finished; a state left in "creating" is stale (an interrupted up). */
  phase: z.enum(['creating', 'ready']),
  createdAt: z.string(),
  /** The cgroup v2 mount found in /proc/mounts. */
  cgroupMount: z.string(),
  /** <cgroupMount>/nm-<lab>: every lab process lives below it. */
  cgroupRoot: z.string(),
  underlay: z.object({ netns: z.string(), netnsPath: z.string(), bridge: z.string(), cidr: z.string() }),
  nodes: z.array(nodeSchema),
  pods: z.array(podSchema),
  control: controlSchema,
});

/** A waypoint's own pod (lab/waypoints), recorded in <state dir>/waypoints/<namespace>.<name>.json. */
const waypointPodSchema = z.object({
  gateway: z.object({ namespace: z.string(), name: z.string() }),
  slot: z.number().int().positive(),
  pod: podSchema,
});

export type LabProcess = z.infer<typeof processSchema>;
export type LabWaypointPod = z.infer<typeof waypointPodSchema>;
export type LabPod = z.infer<typeof podSchema>;
export type LabNode = z.infer<typeof nodeSchema>;
export type LabControl = z.infer<typeof controlSchema>;
/** state.json as written by `lab up`. */
export type LabTopology = z.infer<typeof stateSchema>;
/** state.json plus the recorded processes. */
export type LabState = LabTopology & { processes: LabProcess[] };

export class LabStateError extends Error {
  override name = 'LabStateError';
}

export function checkLabName(lab: string): string {
  if (!LAB_NAME_RE.test(lab)) {
    throw new LabStateError(`lab name '${lab}' is not valid: use 1-8 characters from a-z and 0-9 (for example --lab lab2)`);
  }
  return lab;
}

export const labStateDir = (lab: string): string => join(LAB_STATE_ROOT, checkLabName(lab));
export const labStatePath = (lab: string): string => join(labStateDir(lab), 'state.json');
export const labProcsDir = (lab: string): string => join(labStateDir(lab), 'procs');
export const labWaypointsDir = (lab: string): string => join(labStateDir(lab), 'waypoints');

/** The lab's waypoint pods (made by the lab controller), sorted by pod name. */
export function readWaypointPods(lab: string): LabWaypointPod[] {
  let files: string[];
  try {
    files = readdirSync(labWaypointsDir(lab));
  } catch {
    return [];
  }
  const out: LabWaypointPod[] = [];
  for (const f of files) {
    if (!f.endsWith('.json')) continue;
    try {
      const p = waypointPodSchema.safeParse(JSON.parse(readFileSync(join(labWaypointsDir(lab), f), 'utf8')));
      if (p.success) out.push(p.data);
    } catch {
      // being written or removed right now
    }
  }
  return out.sort((a, b) => a.pod.name.localeCompare(b.pod.name));
}

const waypointFile = (lab: string, g: { namespace: string; name: string }): string => join(labWaypointsDir(lab), `${g.namespace}.${g.name}.json`);

export function writeWaypointPod(lab: string, w: LabWaypointPod): void {
  mkdirSync(labWaypointsDir(lab), { recursive: true });
  writeAtomic(waypointFile(lab, w.gateway), JSON.stringify(waypointPodSchema.parse(w)) + '\n');
}

export function forgetWaypointPod(lab: string, g: { namespace: string; name: string }): void {
  rmSync(waypointFile(lab, g), { force: true });
}

/** Reads state.json (without processes); undefined when the lab has no state file. */
export function readLabTopology(lab: string): LabTopology | undefined {
  let text: string;
  try {
    text = readFileSync(labStatePath(lab), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new LabStateError(`lab state ${labStatePath(lab)} is not JSON (${(err as Error).message}); run 'nodemesh lab down --lab ${lab}' and 'lab up' again`);
  }
  const parsed = stateSchema.safeParse(json);
  if (!parsed.success) {
    throw new LabStateError(
      `lab state ${labStatePath(lab)} is not valid (${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}); run 'nodemesh lab down --lab ${lab}' and 'lab up' again`,
    );
  }
  return parsed.data;
}

export function readLabProcesses(lab: string): LabProcess[] {
  let files: string[];
  try {
    files = readdirSync(labProcsDir(lab));
  } catch {
    return [];
  }
  const out: LabProcess[] = [];
  for (const f of files) {
    if (!f.endsWith('.json')) continue;
    try {
      const p = processSchema.safeParse(JSON.parse(readFileSync(join(labProcsDir(lab), f), 'utf8')));
      if (p.success) out.push(p.data);
    } catch {
      // a record being written right now (or removed): skip it
    }
  }
  return out.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}

/** The lab's state, or undefined when there is no lab of that name. */
export function tryLoadLabState(lab: string): LabState | undefined {
  const topo = readLabTopology(lab);
  return topo ? { ...topo, processes: readLabProcesses(lab) } : undefined;
}

/** The lab's state; throws an actionable error when the lab is not up. */
export function loadLabState(lab: string = DEFAULT_LAB): LabState {
  const state = tryLoadLabState(lab);
  if (!state) throw new LabStateError(`lab '${lab}' is not up (no ${labStatePath(lab)}); run 'nodemesh lab up --lab ${lab}' first`);
  if (state.phase !== 'ready') {
    throw new LabStateError(`lab '${lab}' is incomplete (an interrupted 'lab up'?); run 'nodemesh lab up --lab ${lab}' again`);
  }
  return state;
}

function writeAtomic(path: string, data: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode: 0o644 });
  renameSync(tmp, path);
}

export function writeLabTopology(topo: LabTopology): void {
  mkdirSync(labStateDir(topo.lab), { recursive: true });
  writeAtomic(labStatePath(topo.lab), JSON.stringify(stateSchema.parse(topo), null, 2) + '\n');
}

export function recordLabProcess(lab: string, proc: LabProcess): void {
  mkdirSync(labProcsDir(lab), { recursive: true });
  writeAtomic(join(labProcsDir(lab), `${proc.pid}.json`), JSON.stringify(proc) + '\n');
}

export function forgetLabProcess(lab: string, pid: number): void {
  rmSync(join(labProcsDir(lab), `${pid}.json`), { force: true });
}

export function removeLabStateDir(lab: string): void {
  rmSync(labStateDir(lab), { recursive: true, force: true });
}

export function findPod(state: LabTopology, pod: string): LabPod {
  const p = state.pods.find((x) => x.name === pod);
  if (!p) throw new LabStateError(`lab '${state.lab}' has no pod '${pod}' (pods: ${state.pods.map((x) => x.name).join(', ')})`);
  return p;
}

/** Names every place a process can run in: pods, nodes and the control host. */
export interface LabPlace {
  name: string;
  kind: 'pod' | 'node' | 'control';
  netnsPath: string;
  cgroup: string;
  node?: string;
}

export function findPlace(state: LabTopology, name: string): LabPlace {
  const pod = state.pods.find((x) => x.name === name);
  if (pod) return { name, kind: 'pod', netnsPath: pod.netnsPath, cgroup: pod.cgroup, node: pod.node };
  const node = state.nodes.find((x) => x.name === name);
  if (node) return { name, kind: 'node', netnsPath: node.netnsPath, cgroup: node.cgroup, node: node.name };
  if (name === 'control') return { name, kind: 'control', netnsPath: state.control.netnsPath, cgroup: state.control.cgroup };
  const wps = readWaypointPods(state.lab);
  const wp = wps.find((w) => w.pod.name === name);
  if (wp) return { name, kind: 'pod', netnsPath: wp.pod.netnsPath, cgroup: wp.pod.cgroup, node: wp.pod.node };
  const all = [...state.pods.map((x) => x.name), ...wps.map((w) => w.pod.name), ...state.nodes.map((x) => x.name), 'control'];
  throw new LabStateError(`lab '${state.lab}' has no pod, node or control host named '${name}' (known: ${all.join(', ')})`);
}
