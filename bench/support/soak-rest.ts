// The soak's leak rule: what each mesh process holds at rest, checkpoint after checkpoint.
//
// Under load a proxy's fds follow the connections open at that moment (rate x latency, and the
// waypoint's upstream pool keeps the most it needed in the last idle timeout), and a garbage-collected
// heap holds whatever garbage the collector has not reached yet: both rise with the machine's load
// without anything leaking. So the soak pauses its requests at checkpoints (every few minutes),
// waits until the processes settle, and reads at rest:
//   - the fds not held by an established TCP connection (the kernel's /proc/net/tcp of every lab
//     netns, matched by socket inode): listeners, files, pipes, eventfds, and any socket the
//     process failed to close (CLOSE_WAIT after its peer left) — what a leaked fd raises,
//     whatever the load was, while the connections open at rest (pooled, idle) do not count;
//   - stale connections: records a node proxy reports open at an earlier checkpoint (≥ 2 min) and
//     still open now with not one byte moved either way — a record that outlived its socket, or a
//     connection leaked with its fd and record both (the soak's traffic holds nothing idle that
//     long: pooled connections close after 60 s idle);
//   - the live heap and RSS right after a forced full collection (heap-probe.ts), when no request
//     is in flight.
// Pure: the benchmark gathers the points (bench/soak.ts); the unit tests feed it real processes.

export interface ConnectionRecord {
  readonly id: number;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly workload?: string;
  readonly direction?: string;
}

/**
 * The TCP sockets of /proc/net/tcp and /proc/net/tcp6 text (one netns): socket inode -> state
 * (`01` ESTABLISHED, `0A` LISTEN, `08` CLOSE_WAIT, … as the kernel prints them).
 */
export function parseProcNetTcp(text: string): Map<string, string> {
  const states = new Map<string, string>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode …
    if (f.length < 10 || !/^\d+:$/.test(f[0] ?? '')) continue;
    states.set(f[9]!, f[3]!);
  }
  return states;
}

/** How many of a process's socket fds (`socket:[inode]` link targets) are established TCP connections. */
export function establishedSockets(fdTargets: readonly string[], tcp: ReadonlyMap<string, string>): number {
  let n = 0;
  for (const t of fdTargets) {
    const inode = /^socket:\[(\d+)\]$/.exec(t)?.[1];
    if (inode !== undefined && tcp.get(inode) === '01') n++;
  }
  return n;
}

/** One process at one checkpoint. */
export interface RestPoint {
  /** Seconds since the traffic started. */
  readonly at: number;
  readonly pid: number;
  readonly fds: number;
  /** Established TCP connections among its fds (any netns): what it holds for its peers now. */
  readonly connections: number;
  /** Connection records the process reports open (a node proxy's /connections), shown. */
  readonly records?: number;
  readonly rssMiB: number;
  /** False when fds and connections were still changing when the wait for rest ran out. */
  readonly settled: boolean;
  /** Connections also open at the previous checkpoint with no byte moved since (staleConnections). */
  readonly stale: number;
  /** After a forced full collection (Node processes probed through their inspector). */
  readonly heapUsedMiB?: number;
  /** The compiled code in heapUsedMiB (shown: the JIT tiers up and flushes on its own). */
  readonly codeSpaceMiB?: number;
  readonly rssAfterGcMiB?: number;
  /** What the stray fds are (strayKinds), shown. */
  readonly strayKinds?: Record<string, number>;
}

/** The fds a process holds beyond its established TCP connections: listeners, files, pipes, sockets closing or leaked. */
export const strayFds = (p: RestPoint): number => p.fds - p.connections;

/** Records in both lists (by id) whose byte counts did not move: open and idle the whole time. */
export function staleConnections(before: readonly ConnectionRecord[], now: readonly ConnectionRecord[]): ConnectionRecord[] {
  const earlier = new Map(before.map((c) => [c.id, c]));
  return now.filter((c) => {
    const b = earlier.get(c.id);
    return b !== undefined && b.bytesSent === c.bytesSent && b.bytesReceived === c.bytesReceived;
  });
}

export interface Change {
  readonly first: number;
  readonly last: number;
  readonly changePct: number;
}

const change = (first: number, last: number): Change => ({ first, last, changePct: first === 0 ? (last === 0 ? 0 : 100) : ((last - first) / first) * 100 });

export interface RestVerdict {
  readonly n: number;
  readonly strayFds: Change;
  readonly heapUsed?: Change;
  readonly rssAfterGc?: Change;
  readonly stale: number;
  readonly unsettled: number;
  readonly flat: boolean;
  readonly why: string[];
}

/**
 * The verdict on one process's checkpoints: fds not held by a connection, the live heap and the
 * RSS after a full collection each within ±`tolerancePct` % — the lower of the first two
 * checkpoints against the lower of the last two (first against last with fewer than four: a
 * reading caught while connections were still closing raises one checkpoint, a leak raises every
 * later one) — no stale connection at any checkpoint, at least two checkpoints, no restart.
 */
export function judgeRest(points: readonly RestPoint[], o: { restarted?: boolean; tolerancePct?: number } = {}): RestVerdict {
  const tol = o.tolerancePct ?? 5;
  const why: string[] = [];
  if (o.restarted || new Set(points.map((p) => p.pid)).size > 1) why.push('restarted');
  if (points.length < 2) {
    why.push('fewer than two checkpoints');
    return { n: points.length, strayFds: change(0, 0), stale: 0, unsettled: 0, flat: false, why };
  }
  const k = points.length >= 4 ? 2 : 1;
  const ends = (value: (p: RestPoint) => number | undefined): Change | undefined => {
    const head = points.slice(0, k).map(value);
    const tail = points.slice(-k).map(value);
    if ([...head, ...tail].some((v) => v === undefined)) return undefined;
    return change(Math.min(...(head as number[])), Math.min(...(tail as number[])));
  };
  const fds = ends(strayFds)!;
  if (Math.abs(fds.changePct) > tol) why.push('fds at rest');
  const heapUsed = ends((p) => p.heapUsedMiB);
  if (heapUsed && Math.abs(heapUsed.changePct) > tol) why.push('live heap');
  const rssAfterGc = ends((p) => p.rssAfterGcMiB);
  if (rssAfterGc && Math.abs(rssAfterGc.changePct) > tol) why.push('RSS after GC');
  const stale = points.reduce((a, p) => a + p.stale, 0);
  if (stale > 0) why.push('stale connections');
  return { n: points.length, strayFds: fds, heapUsed, rssAfterGc, stale, unsettled: points.filter((p) => !p.settled).length, flat: why.length === 0, why };
}

/** What a process's stray fds are: `tcp CLOSE_WAIT`, `socket` (not TCP), `pipe:`, `anon_inode:bpf-map`, a path — with counts. */
export function strayKinds(fdTargets: readonly string[], tcp: ReadonlyMap<string, string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of fdTargets) {
    const inode = /^socket:\[(\d+)\]$/.exec(t)?.[1];
    const state = inode === undefined ? undefined : tcp.get(inode);
    if (state === '01') continue;
    const kind = inode === undefined ? t.replace(/\[\d+\]$/, '') : state === undefined ? 'socket (not TCP)' : `tcp ${TCP_STATES[state] ?? state}`;
    out[kind] = (out[kind] ?? 0) + 1;
  }
  return out;
}

const TCP_STATES: Record<string, string> = {
  '02': 'SYN_SENT',
  '03': 'SYN_RECV',
  '04': 'FIN_WAIT1',
  '05': 'FIN_WAIT2',
  '06': 'TIME_WAIT',
  '07': 'CLOSE',
  '08': 'CLOSE_WAIT',
  '09': 'LAST_ACK',
  '0A': 'LISTEN',
  '0B': 'CLOSING',
};

/**
 * Reads `read()` every `intervalMs` until `stableReads` readings in a row are the same (by
 * `same`), or `timeoutMs` has passed: the last reading, and whether it settled.
 */
export async function settle<T>(
  read: () => T | Promise<T>,
  same: (a: T, b: T) => boolean,
  o: { intervalMs?: number; stableReads?: number; timeoutMs?: number } = {},
): Promise<{ value: T; settled: boolean }> {
  const interval = o.intervalMs ?? 500;
  const want = o.stableReads ?? 3;
  const deadline = Date.now() + (o.timeoutMs ?? 20_000);
  let value = await read();
  let run = 1;
  while (run < want) {
    if (Date.now() >= deadline) return { value, settled: false };
    await new Promise((r) => setTimeout(r, interval));
    const next = await read();
    run = same(value, next) ? run + 1 : 1;
    value = next;
  }
  return { value, settled: true };
}
