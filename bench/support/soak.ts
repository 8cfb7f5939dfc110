// What a node proxy's resources are made of and whether they stay flat over a long run (pure
// summaries; the benchmark samples /proc and the proxies' /stats).

/** One reading of one node proxy. */
export interface ProxySample {
  /** Seconds since the soak started. */
  readonly at: number;
  readonly rssMiB: number;
  readonly fds: number;
  readonly threads: number;
}

/** process.memoryUsage() as a node proxy's /stats reports it. */
export interface MemoryUsage {
  readonly rss: number;
  readonly heapTotal: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

const MiB = 1024 * 1024;

/**
 * The resident memory split the way it can be acted on: the V8 heap (JavaScript objects), memory
 * held outside it for JavaScript (Buffers, TLS and HTTP/2 state counted as external), and the rest
 * (code, native allocations not reported to V8, thread stacks), in MiB.
 */
export function memoryParts(m: MemoryUsage): { rss: number; heap: number; heapUsed: number; external: number; other: number } {
  const other = Math.max(0, m.rss - m.heapTotal - m.external);
  return { rss: m.rss / MiB, heap: m.heapTotal / MiB, heapUsed: m.heapUsed / MiB, external: m.external / MiB, other: other / MiB };
}

/**
 * /proc/PID/smaps_rollup in MiB: resident memory backed by files (the node binary's code and
 * libraries — mostly shared with every other Node process, the same in any Node program) and
 * anonymous (the process's own: heaps, thread stacks).
 */
export function residentParts(smapsRollup: string): { fileMiB: number; anonMiB: number } {
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(smapsRollup)?.[1] ?? Number.NaN);
  const rss = kb('Rss');
  const anon = kb('Anonymous');
  return { fileMiB: (rss - anon) / 1024, anonMiB: anon / 1024 };
}

export interface Flatness {
  /** Samples judged (those after the warm-up). */
  readonly n: number;
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** Largest deviation from the median, in percent of it. */
  readonly worstPct: number;
  readonly flat: boolean;
}

/**
 * Whether `values` (after dropping those taken before `warmupS`) stay within ±`pct` % of their
 * median. Fewer than two samples left: not judged (flat false, n says why).
 */
export function flatness(samples: readonly { at: number; value: number }[], warmupS: number, pct = 5): Flatness {
  const v = samples.filter((s) => s.at >= warmupS).map((s) => s.value);
  if (v.length < 2) return { n: v.length, median: Number.NaN, min: Number.NaN, max: Number.NaN, worstPct: Number.NaN, flat: false };
  const sorted = [...v].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  const min = sorted[0]!;
  const max = sorted[sorted.length - 1]!;
  const worstPct = median > 0 ? (100 * Math.max(median - min, max - median)) / median : 0;
  return { n: v.length, median, min, max, worstPct, flat: worstPct <= pct };
}

/**
 * Whether every series (one per node proxy, RSS in MiB sampled at a fixed step) has settled: its
 * last `samples` readings lie within `tolMiB` of each other. Idle memory is read only then — a
 * proxy right after a burst still holds heap that V8 (or the proxy's idle collection) gives back
 * a few seconds later.
 */
export function settled(series: readonly (readonly number[])[], samples = 3, tolMiB = 0.25): boolean {
  return (
    series.length > 0 &&
    series.every((s) => {
      if (s.length < samples) return false;
      const last = s.slice(-samples);
      return Math.max(...last) - Math.min(...last) <= tolMiB;
    })
  );
}
