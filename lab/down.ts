// `lab down`: removes everything a lab made — its processes, netns (and with them every link),
// cgroups, bpffs pins and state — and nothing else. It works from the state file AND from a scan for
// `nm-<lab>-` names, so it also cleans an interrupted `lab up`. Safe to run twice.
import { existsSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { allNetns } from './topology';
import { checkLabName, labStateDir, readLabProcesses, readLabTopology, removeLabStateDir, type LabTopology } from './state';
import { BPFFS, cgroup2Mount, cgroupPids, cgroupTreeDeepestFirst, ipBatch, isSameProcess, listNetns, run, sleep } from './sys';

/** Where node proxies keep their enrolment records (one dir per node: `<lab>-<node>` in the lab). */
export const NODE_PROXY_STATE_ROOT = process.env.NODEMESH_NODE_PROXY_STATE_ROOT ?? '/run/nodemesh/node-proxy';

export interface DownReport {
  lab: string;
  killed: number;
  netns: string[];
  cgroups: number;
  pins: string[];
  /** Node proxy enrolment-record dirs removed. */
  records: string[];
  stateRemoved: boolean;
}

export type Progress = (msg: string) => void;

const quiet: Progress = () => undefined;

/** What of this lab exists on the machine right now (by name, whatever the state file says). */
export function scanLab(lab: string): { netns: string[]; cgroupRoot?: string; pins: string[] } {
  checkLabName(lab);
  const prefix = `nm-${lab}-`;
  const netns = listNetns().filter((n) => n.startsWith(prefix));
  let cgroupRoot: string | undefined;
  try {
    const dir = join(cgroup2Mount(), `nm-${lab}`);
    if (existsSync(dir)) cgroupRoot = dir;
  } catch {
    // no cgroup v2 on this machine: nothing of ours can be there
  }
  const pinParent = join(BPFFS, 'nodemesh');
  let pins: string[] = [];
  try {
    pins = readdirSync(pinParent)
      .filter((d) => d.startsWith(`${lab}-`))
      .map((d) => join(pinParent, d));
  } catch {
    pins = [];
  }
  return { netns, cgroupRoot, pins };
}

function kill(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Pids whose network namespace is one of the lab's (`ip netns pids`), so a process started with plain `ip netns exec` is found too. */
async function netnsPids(names: string[]): Promise<number[]> {
  const out: number[] = [];
  for (const n of names) {
    try {
      const text = await run('ip', ['netns', 'pids', n]);
      for (const l of text.split('\n')) if (l.trim()) out.push(Number(l.trim()));
    } catch {
      // the netns vanished meanwhile
    }
  }
  return out.filter((p) => p !== process.pid);
}

async function waitGone(pids: number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  let alive = pids;
  while (alive.length && Date.now() < deadline) {
    await sleep(50);
    alive = alive.filter((p) => existsSync(`/proc/${p}`) && !isZombie(p));
  }
  return alive;
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Kills every process of the lab: recorded ones (SIGTERM first), then the cgroup tree and the netns. */
async function killProcesses(lab: string, cgroupRoot: string | undefined, netns: string[], progress: Progress): Promise<number> {
  const targets = new Set<number>();
  for (const p of readLabProcesses(lab)) {
    if (isSameProcess(p.pid, p.startTime) && kill(p.pid, 'SIGTERM')) targets.add(p.pid);
  }
  const tree = cgroupRoot ? cgroupTreeDeepestFirst(cgroupRoot) : [];
  for (const cg of tree) for (const pid of cgroupPids(cg)) if (pid !== process.pid && kill(pid, 'SIGTERM')) targets.add(pid);
  for (const pid of await netnsPids(netns)) if (kill(pid, 'SIGTERM')) targets.add(pid);
  if (targets.size) progress(`stopping ${targets.size} process(es)`);
  const left = await waitGone([...targets], 2000);
  // cgroup.kill (Linux 5.14+) SIGKILLs the whole subtree atomically, including processes forked meanwhile.
  if (cgroupRoot && existsSync(join(cgroupRoot, 'cgroup.kill'))) {
    try {
      writeFileSync(join(cgroupRoot, 'cgroup.kill'), '1');
    } catch {
      // the cgroup went away meanwhile
    }
  }
  for (const pid of left) kill(pid, 'SIGKILL');
  for (const cg of tree) for (const pid of cgroupPids(cg)) if (pid !== process.pid) kill(pid, 'SIGKILL'), targets.add(pid);
  for (const pid of await netnsPids(netns)) if (kill(pid, 'SIGKILL')) targets.add(pid);
  const stuck = await waitGone([...targets], 3000);
  if (stuck.length) progress(`warning: process(es) ${stuck.join(', ')} did not exit after SIGKILL`);
  return targets.size;
}

async function removeCgroups(cgroupRoot: string | undefined): Promise<number> {
  if (!cgroupRoot) return 0;
  let removed = 0;
  for (let attempt = 0; attempt < 40; attempt++) {
    const tree = cgroupTreeDeepestFirst(cgroupRoot);
    if (tree.length === 0) return removed;
    for (const cg of tree) {
      try {
        rmdirSync(cg);
        removed++;
      } catch {
        // EBUSY while the last killed tasks are being reaped: try again shortly
      }
    }
    if (!existsSync(cgroupRoot)) return removed;
    await sleep(50);
  }
  throw new Error(`could not remove cgroup ${cgroupRoot}: still busy (see ${cgroupRoot}/cgroup.procs); kill those processes and run 'lab down' again`);
}

export async function labDown(lab: string, progress: Progress = quiet): Promise<DownReport> {
  checkLabName(lab);
  let topo: LabTopology | undefined;
  try {
    topo = readLabTopology(lab);
  } catch (err) {
    progress(`ignoring unreadable state: ${(err as Error).message}`);
  }
  const scan = scanLab(lab);
  const netnsNames = [...new Set([...(topo ? allNetns(topo) : []), ...scan.netns])].filter((n) => listNetns().includes(n));
  const cgroupRoot = scan.cgroupRoot ?? (topo && existsSync(topo.cgroupRoot) ? topo.cgroupRoot : undefined);

  const killed = await killProcesses(lab, cgroupRoot, netnsNames, progress);

  if (netnsNames.length) {
    progress(`removing ${netnsNames.length} network namespace(s)`);
    // -force: keep going when one was removed meanwhile; removing a netns destroys its links too.
    await ipBatch(
      undefined,
      netnsNames.map((n) => `netns del ${n}`),
    ).catch(async () => {
      for (const n of netnsNames) await run('ip', ['netns', 'del', n]).catch(() => undefined);
    });
  }
  const cgroups = await removeCgroups(cgroupRoot);
  const pinDirs = [...new Set([...scan.pins, ...(topo ? topo.nodes.map((n) => n.bpffsDir) : [])])].filter((d) => existsSync(d));
  for (const d of pinDirs) rmSync(d, { recursive: true, force: true });
  // The node proxies' enrolment records: what they describe (netns, cgroups, pins) is gone now.
  let records: string[] = [];
  try {
    records = readdirSync(NODE_PROXY_STATE_ROOT).filter((d) => d.startsWith(`${lab}-`));
  } catch {
    records = [];
  }
  for (const d of records) rmSync(join(NODE_PROXY_STATE_ROOT, d), { recursive: true, force: true });
  const hadState = existsSync(labStateDir(lab)) || topo !== undefined;
  removeLabStateDir(lab);
  return { lab, killed, netns: netnsNames, cgroups, pins: pinDirs, records, stateRemoved: hadState };
}
