// Enrolment as a diff: what should be captured (from the workload source) against what the node
// proxy already set up (its enrolment records, which survive a restart together with the bpffs
// pins). Pure: the caller observes the kernel (netns inode, cgroup id) and carries out the plan.
import { type CaptureWorkload, workloadKey } from './workload';

/** What the node proxy set up for one workload; stored next to the pins so a restart can adopt it. */
export interface EnrolmentRecord {
  readonly key: string;
  readonly workload: CaptureWorkload;
  /** The cookie of the workload's netns (the key of every per-workload map entry), as a decimal string. */
  readonly netnsCookie: string;
  /** Inode of the netns when enrolled: tells a recreated netns at the same path apart. */
  readonly netnsInode: number;
  /** Inode of the cgroup directory when enrolled (the cgroup id): same for a recreated cgroup. */
  readonly cgroupId: number;
  readonly enrolledAt: string;
}

/** What the kernel says about a desired workload's netns and cgroup right now. */
export interface Observed {
  readonly netnsInode?: number;
  readonly cgroupId?: number;
}

export type EnrolmentAction =
  /** New workload: open listeners, write map entries, attach programs, pin links, write the record. */
  | { kind: 'enrol'; workload: CaptureWorkload }
  /** Already enrolled and unchanged (a restart): keep pins and entries, re-open the listeners. */
  | { kind: 'adopt'; workload: CaptureWorkload; record: EnrolmentRecord }
  /** Same netns and cgroup, different exclusions or addresses: rewrite its map entries. */
  | { kind: 'update'; workload: CaptureWorkload; record: EnrolmentRecord }
  /** No longer wanted, or its netns/cgroup is gone or was recreated: undo exactly what the record says. */
  | { kind: 'unenrol'; record: EnrolmentRecord; reason: string }
  /** Wanted but cannot be enrolled now (netns or cgroup missing): retried on the next change. */
  | { kind: 'skip'; workload: CaptureWorkload; reason: string };

function sameSet<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a);
  return b.every((x) => s.has(x));
}

/** True when the map entries derived from the two descriptions differ. */
export function settingsChanged(a: CaptureWorkload, b: CaptureWorkload): boolean {
  return (
    !sameSet(a.excludedOutboundPorts, b.excludedOutboundPorts) ||
    !sameSet(a.excludedInboundPorts, b.excludedInboundPorts) ||
    !sameSet(a.excludedCidrs, b.excludedCidrs) ||
    !sameSet(a.addresses, b.addresses)
  );
}

/**
 * The actions that take the node from `records` to `desired`. Unenrols come first (a recreated
 * workload is unenrolled and then enrolled again), then the rest in the order of `desired`.
 */
export function planEnrolment(
  desired: readonly CaptureWorkload[],
  records: readonly EnrolmentRecord[],
  observe: (w: CaptureWorkload) => Observed,
): EnrolmentAction[] {
  const byKey = new Map(records.map((r) => [r.key, r]));
  const wanted = new Set<string>();
  const unenrols: EnrolmentAction[] = [];
  const rest: EnrolmentAction[] = [];
  for (const w of desired) {
    const key = workloadKey(w);
    if (wanted.has(key)) continue; // the first description of a workload wins
    wanted.add(key);
    const obs = observe(w);
    const rec = byKey.get(key);
    if (obs.netnsInode === undefined || obs.cgroupId === undefined) {
      const what = obs.netnsInode === undefined ? `netns ${w.netnsPath}` : `cgroup ${w.cgroupPath}`;
      if (rec) unenrols.push({ kind: 'unenrol', record: rec, reason: `${what} is gone` });
      rest.push({ kind: 'skip', workload: w, reason: `${what} does not exist` });
      continue;
    }
    if (!rec) {
      rest.push({ kind: 'enrol', workload: w });
      continue;
    }
    const moved =
      rec.workload.netnsPath !== w.netnsPath || rec.workload.cgroupPath !== w.cgroupPath || rec.netnsInode !== obs.netnsInode || rec.cgroupId !== obs.cgroupId;
    if (moved) {
      unenrols.push({ kind: 'unenrol', record: rec, reason: 'its netns or cgroup was recreated' });
      rest.push({ kind: 'enrol', workload: w });
    } else if (settingsChanged(rec.workload, w)) {
      rest.push({ kind: 'update', workload: w, record: rec });
    } else {
      rest.push({ kind: 'adopt', workload: w, record: rec });
    }
  }
  for (const r of records) {
    if (!wanted.has(r.key)) unenrols.push({ kind: 'unenrol', record: r, reason: 'no longer selected for capture' });
  }
  return [...unenrols, ...rest];
}
