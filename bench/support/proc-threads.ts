// A process's CPU time and wake-ups, thread by thread, from /proc: the benchmarks' counts that the
// machine's load moves little (a wake-up is a sleep that ended, whatever it cost). Pure parsing and
// arithmetic apart from the reads, so the rules are unit-tested.
import { readdirSync, readFileSync } from 'node:fs';

/** What a process's threads do, by the name the thread carries (the addon names its own). */
export type ThreadGroup = 'engine' | 'splice' | 'main' | 'other';

export interface ThreadSample {
  readonly tid: number;
  readonly name: string;
  /** Time on a CPU (schedstat), nanoseconds. */
  readonly cpuNs: number;
  /** Time runnable but waiting for a CPU (schedstat's run delay), nanoseconds: what a wake-up waited before it ran. */
  readonly waitNs: number;
  /** Voluntary context switches: each one a sleep, so each one a wake-up. */
  readonly voluntary: number;
  /** Involuntary ones: preemptions (the machine's load moves these). */
  readonly involuntary: number;
}

/** The thread's group: its JavaScript main thread (tid = pid), the HBONE engine's or splice threads, or anything else (libuv's pool, V8's). */
export function threadGroup(pid: number, tid: number, name: string): ThreadGroup {
  if (tid === pid) return 'main';
  if (name.startsWith('nm-hbone')) return 'engine';
  if (name.startsWith('nm-splice')) return 'splice';
  return 'other';
}

/** name, voluntary and involuntary switches from /proc/PID/task/TID/status. */
export function parseThreadStatus(status: string): { name: string; voluntary: number; involuntary: number } {
  const field = (k: string): string | undefined => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(status)?.[1];
  return {
    name: (field('Name') ?? '').trim(),
    voluntary: Number(field('voluntary_ctxt_switches') ?? 0),
    involuntary: Number(field('nonvoluntary_ctxt_switches') ?? 0),
  };
}

/** Every live thread of `pid` (a thread that exits between the listing and the read is left out). */
export function readThreads(pid: number): ThreadSample[] {
  const out: ThreadSample[] = [];
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tids) {
    try {
      const s = parseThreadStatus(readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8'));
      const [cpuNs, waitNs] = readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ').map(Number);
      out.push({ tid: Number(t), name: s.name, cpuNs: cpuNs ?? 0, waitNs: waitNs ?? 0, voluntary: s.voluntary, involuntary: s.involuntary });
    } catch {
      // the thread ended
    }
  }
  return out;
}

export interface GroupUse {
  /** CPU seconds used by the group's threads between the two samples. */
  readonly cpuS: number;
  /** Seconds the group's threads were runnable but waited for a CPU. */
  readonly waitS: number;
  /** Wake-ups (voluntary switches) of the group's threads between the two samples. */
  readonly wakeups: number;
  readonly involuntary: number;
  /** Threads of the group alive in the second sample. */
  readonly threads: number;
}

/**
 * What each group of `pid`'s threads used between `before` and `after`. A thread that started
 * meanwhile counts from zero; one that ended is missing (its share is in the process's total only).
 */
export function threadUse(pid: number, before: readonly ThreadSample[], after: readonly ThreadSample[]): Record<ThreadGroup, GroupUse> {
  const was = new Map(before.map((t) => [t.tid, t]));
  const zero = (): { cpuS: number; waitS: number; wakeups: number; involuntary: number; threads: number } => ({
    cpuS: 0,
    waitS: 0,
    wakeups: 0,
    involuntary: 0,
    threads: 0,
  });
  const acc: Record<ThreadGroup, ReturnType<typeof zero>> = { engine: zero(), splice: zero(), main: zero(), other: zero() };
  for (const t of after) {
    const b = was.get(t.tid);
    const g = acc[threadGroup(pid, t.tid, t.name)];
    g.cpuS += (t.cpuNs - (b?.cpuNs ?? 0)) / 1e9;
    g.waitS += (t.waitNs - (b?.waitNs ?? 0)) / 1e9;
    g.wakeups += t.voluntary - (b?.voluntary ?? 0);
    g.involuntary += t.involuntary - (b?.involuntary ?? 0);
    g.threads++;
  }
  return acc;
}
