// `lab up`: builds the lab from kernel objects — netns for the underlay, the control host, each node
// and each pod; veths created directly between namespaces (nothing in the root netns); addresses,
// routes, forwarding; a cgroup per pod, node and the control host; a bpffs dir per node.
import { existsSync, mkdirSync } from 'node:fs';
import { labDown, scanLab, type Progress } from './down';
import { checkShape, controlBatch, nodeBatch, podBatch, planLab, underlayBatch, allCgroups, allNetns, type LabShape } from './topology';
import { readLabTopology, writeLabTopology, type LabTopology } from './state';
import { cgroup2Mount, ensureBpffs, ipBatch, listNetns, run } from './sys';

export interface UpResult {
  state: LabTopology;
  /** true when a ready lab of the same shape was already there and was left as it was. */
  reused: boolean;
  /** true when stale objects (an interrupted up, or a lab of another shape) were removed first. */
  cleanedStale: boolean;
  ms: number;
}

const quiet: Progress = () => undefined;

function sameShape(t: LabTopology, shape: LabShape): boolean {
  return t.nodes.length === shape.nodes && t.nodes.every((n) => n.pods.length === shape.podsPerNode);
}

/** A ready lab whose every netns and cgroup still exists. */
function intact(t: LabTopology): boolean {
  const ns = new Set(listNetns());
  return t.phase === 'ready' && allNetns(t).every((n) => ns.has(n)) && allCgroups(t).every((c) => existsSync(c));
}

async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export async function labUp(shapeIn: LabShape, progress: Progress = quiet): Promise<UpResult> {
  const t0 = Date.now();
  const shape = checkShape(shapeIn);
  const { lab } = shape;
  let existing: LabTopology | undefined;
  try {
    existing = readLabTopology(lab);
  } catch {
    existing = undefined; // unreadable state: treated as stale below
  }
  if (existing && sameShape(existing, shape) && intact(existing)) {
    progress(`lab '${lab}' is already up with ${shape.nodes} node(s) x ${shape.podsPerNode} pod(s); leaving it as it is`);
    return { state: existing, reused: true, cleanedStale: false, ms: Date.now() - t0 };
  }
  const scan = scanLab(lab);
  const stale = existing !== undefined || scan.netns.length > 0 || scan.cgroupRoot !== undefined || scan.pins.length > 0;
  if (stale) {
    progress(
      existing?.phase === 'ready' ? `replacing lab '${lab}' (different shape or damaged)` : `cleaning stale objects of lab '${lab}' (an interrupted run?)`,
    );
    await labDown(lab, progress);
  }

  const topo = planLab(shape, cgroup2Mount());
  // Written first, in phase "creating", so an interrupted up is recognised and cleaned.
  writeLabTopology(topo);
  const netns = allNetns(topo);
  const steps = 6;
  let step = 0;
  const say = (msg: string): void => progress(`[${++step}/${steps}] ${msg}`);

  try {
    say(`network namespaces (${netns.length})`);
    // Tolerates a netns that appeared meanwhile (an `ip` orphaned by a killed earlier up may still
    // finish its batch): a fresh `netns add` makes only empty namespaces, so existing is as good.
    await ipBatch(
      undefined,
      netns.map((n) => `netns add ${n}`),
      true,
    ).catch(() => undefined);
    const have = new Set(listNetns());
    const missing = netns.filter((n) => !have.has(n));
    if (missing.length) throw new Error(`could not create network namespace(s) ${missing.join(', ')} (see 'ip netns add ${missing[0]}')`);

    say(`underlay bridge ${topo.underlay.bridge} in ${topo.underlay.netns} (${topo.underlay.cidr})`);
    await ipBatch(topo.underlay.netns, underlayBatch(topo).lines);

    say(`nodes: pod bridges, pod veths, routes (${topo.nodes.length} node(s), ${topo.pods.length} pod(s))`);
    await inParallel(topo.nodes, 4, async (n) => {
      const b = nodeBatch(topo, n);
      await ipBatch(b.netns, b.lines);
      await run('nsenter', [`--net=${n.netnsPath}`, '--', 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    });
    const c = controlBatch(topo);
    await ipBatch(c.netns, c.lines);

    say(`pods: addresses and default routes`);
    await inParallel(topo.pods, 4, async (p) => {
      const b = podBatch(p);
      await ipBatch(b.netns, b.lines);
    });

    say(`cgroups under ${topo.cgroupRoot}`);
    for (const cg of allCgroups(topo)) mkdirSync(cg, { recursive: true });

    say('bpffs dirs under /sys/fs/bpf/nodemesh');
    await ensureBpffs();
    for (const n of topo.nodes) mkdirSync(n.bpffsDir, { recursive: true });
  } catch (err) {
    progress(`lab up failed: ${(err as Error).message}; removing what was made`);
    await labDown(lab).catch(() => undefined);
    throw err;
  }
  const ready: LabTopology = { ...topo, phase: 'ready' };
  writeLabTopology(ready);
  return { state: ready, reused: false, cleanedStale: stale, ms: Date.now() - t0 };
}
