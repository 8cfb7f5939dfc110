// Gives memory back once the node proxy has gone quiet after a burst (new connections, an
// enrolment wave). V8's own memory reducer does this only when it judges the process idle, and a
// node proxy never quite is (xDS, readiness probes, scrapes): on a busy node, proxies with 100
// workloads held 66-68 MiB for over half a minute after enrolment against 63 settled, and 71-82 MiB
// for over a minute after a burst of new connections (the burst's garbage waiting for a full
// collection; docs/node-proxy.md, "Memory"). V8's low-memory collections and a trim of the C heap,
// 10 s after the last connection opened or closed, release it (tens of ms of CPU once per burst,
// none while traffic flows or while nothing has changed since the last one). Closes count: the
// pooled HBONE connections outlive a burst by the pool's idle timeout, and the small blocks the
// engine threads free when they close stay in their malloc arenas (resident, outside the V8 heap)
// until the C heap is trimmed. (The large buffers, and a thread arena's top, which malloc_trim
// never returns, are given back at free() since the thresholds are held: malloc-thresholds.ts.)
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { reduceMemory } from '../../native/netns';

export interface IdleGcOptions {
  /** How often the proxy looks (default 5 s). */
  readonly intervalMs?: number;
  /** No connection opened or closed for this long counts as quiet (default 10 s). */
  readonly quietMs?: number;
  /** Committed but unused heap, or resident memory grown since the last collection, worth a collection (default 1 MiB). */
  readonly slackBytes?: number;
  /** Heap growth since the last collection that counts as a burst of its own (default 2 MiB: more than the young generation holds between scavenges). */
  readonly growthBytes?: number;
}

export interface HeapNow {
  /** Committed heap (V8's total_heap_size). */
  readonly total: number;
  readonly used: number;
  /** The process's resident memory (the C heap's free pages are in it, not in the V8 heap). */
  readonly rss?: number;
}

/**
 * Pure: when to collect. `tick` is called every interval with the activity (a value that changes
 * whenever a connection opens or closes: counters) and the heap; it answers whether to run a full
 * collection now, and hears what the heap looks like after one (`collected`). After activity and
 * quietMs of quiet it collects once when there is something to give back: V8 heap committed but
 * unused, or resident memory above what it was after the last collection (the C heap's free pages).
 */
export class IdleGcPolicy {
  private lastActivity: string | number | undefined;
  private seen = false;
  private quietSince = 0;
  /** Something happened since the last collection (start-up counts). */
  private pending = false;
  /** The heap in use when activity was last seen, or right after the last collection. */
  private base = Number.NEGATIVE_INFINITY;
  /** Resident memory right after the last collection (or the lowest seen at a quiet look without one). */
  private rssBase = Number.POSITIVE_INFINITY;

  constructor(private readonly o: Required<Pick<IdleGcOptions, 'quietMs' | 'slackBytes' | 'growthBytes'>>) {}

  tick(now: number, activity: string | number, heap: HeapNow): boolean {
    // activity: connections opened or closed, or the heap grew (an enrolment wave, xDS pushes)
    if (!this.seen || activity !== this.lastActivity || heap.used >= this.base + this.o.growthBytes) {
      this.seen = true;
      this.lastActivity = activity;
      this.base = heap.used;
      this.quietSince = now;
      this.pending = true;
      return false;
    }
    if (!this.pending || now - this.quietSince < this.o.quietMs) return false;
    this.pending = false;
    if (heap.total - heap.used >= this.o.slackBytes) return true;
    if (heap.rss === undefined) return false;
    if (heap.rss - this.rssBase >= this.o.slackBytes) return true;
    this.rssBase = Math.min(this.rssBase, heap.rss);
    return false;
  }

  /** The heap right after a collection: growth is counted from here. */
  collected(heap: HeapNow): void {
    this.base = heap.used;
    if (heap.rss !== undefined) this.rssBase = heap.rss;
  }
}

/**
 * Two full collections without `--expose-gc` on the command line (the DaemonSet, the lab and a
 * user's `nodemesh node-proxy` all start it differently): the flag installs V8's `gc` function in
 * contexts made after it, so a fresh context hands it over; the main context gets no global `gc`.
 * Two, because the first frees the burst's objects but leaves the pages its survivors are spread
 * over committed; the second compacts those (a heap of 43 MiB committed, 40 used, with one object
 * in 20 surviving: 31.9 MiB committed after one collection, 6.9 after two).
 */
export function fullCollector(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as unknown;
  if (typeof gc !== 'function') throw new Error('V8 did not provide its gc function (--expose-gc)');
  const collect = gc as () => void;
  return () => {
    collect();
    collect();
  };
}

/**
 * How the node proxy gives memory back: through the addon, V8's low-memory collections (which
 * compact and shrink the young generation, as V8's memory reducer does) and then the C heap's
 * free pages — the engine threads' malloc arenas keep the buffers a burst's streams freed;
 * without the addon, the two collections of fullCollector().
 */
export function memoryReducer(): () => void {
  let fallback: (() => void) | undefined;
  return () => {
    if (fallback) return fallback();
    try {
      reduceMemory();
    } catch {
      fallback = fullCollector();
      fallback();
    }
  };
}

const heapNow = (): HeapNow => {
  const h = getHeapStatistics();
  return { total: h.total_heap_size, used: h.used_heap_size, rss: process.memoryUsage.rss() };
};

/**
 * Runs the policy every `intervalMs` on `activity` (IdleGcPolicy.tick); the timer does not keep the
 * process alive. Returns the stop function.
 */
export function startIdleGc(activity: () => string | number, o: IdleGcOptions = {}, collect: () => void = memoryReducer()): () => void {
  const policy = new IdleGcPolicy({ quietMs: o.quietMs ?? 10_000, slackBytes: o.slackBytes ?? 1 << 20, growthBytes: o.growthBytes ?? 2 << 20 });
  const timer = setInterval(() => {
    if (!policy.tick(Date.now(), activity(), heapNow())) return;
    collect();
    policy.collected(heapNow());
  }, o.intervalMs ?? 5_000);
  timer.unref();
  return () => clearInterval(timer);
}
