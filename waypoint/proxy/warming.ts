// Requests that arrive before their listener's routes (or, after a start, before the first complete
// xDS state): held, not answered 503 at once. Envoy does not serve a listener until its RDS has
// arrived (listener warming); the waypoint accepts on 15008 from the start, so it holds the request
// instead — bounded in count (`maxHeld`) and in time (`timeoutMs` from when it was first held) —
// and runs it again on every accepted configuration change. Past the deadline, or with the queue
// full, the request path answers 503 itself (proxy/handler.ts).
import type { Exchange } from './exchange';

/** Envoy's default initial_fetch_timeout: how long a request waits for its listener's routes. */
export const DEFAULT_WARMING_MS = 15_000;
/** Requests held at once, across listeners; more are answered 503 at once. */
export const DEFAULT_MAX_HELD = 1024;
/** Bounds of the settings: a held request keeps its client's connection (and an upstream-less slot) open. */
export const MAX_WARMING_MS = 600_000;
export const MAX_HELD_LIMIT = 100_000;

export interface WarmingOptions {
  /** How long a request may wait, from when it was first held: 1 ms to 10 min (default 15 s). */
  readonly timeoutMs?: number;
  /** Requests held at once: 0 (never hold: answer 503 at once, as without warming) to 100,000 (default 1024). */
  readonly maxHeld?: number;
}

/**
 * Why `o` cannot be used (one sentence per bad field, naming the field, the value and the range),
 * or undefined when it can. The CLI reports these as usage errors; the constructor throws them.
 */
export function warmingOptionsError(o: WarmingOptions): string | undefined {
  const bad: string[] = [];
  const t = o.timeoutMs;
  if (t !== undefined && !(Number.isInteger(t) && t >= 1 && t <= MAX_WARMING_MS))
    bad.push(`the route warming time limit must be a whole number of milliseconds from 1 to ${MAX_WARMING_MS}, got ${String(t)}`);
  const m = o.maxHeld;
  if (m !== undefined && !(Number.isInteger(m) && m >= 0 && m <= MAX_HELD_LIMIT))
    bad.push(`the number of requests held for routes must be a whole number from 0 (never hold) to ${MAX_HELD_LIMIT}, got ${String(m)}`);
  return bad.length ? bad.join('; ') : undefined;
}

interface Held {
  readonly ex: Exchange;
  readonly retry: (ex: Exchange) => void;
  timer: NodeJS.Timeout | undefined;
}

/** Why a request was not held (for the 503's body), or undefined when it is held now. */
export type HoldRefusal =
  | { readonly reason: 'expired'; readonly waitedMs: number }
  | { readonly reason: 'full'; readonly held: number }
  | { readonly reason: 'stopping' }
  | { readonly reason: 'disabled' };

const DEADLINE = Symbol('nodemesh.warming-deadline');
const HELD = Symbol('nodemesh.warming-held');
type Tracked = Exchange & { [DEADLINE]?: number; [HELD]?: Held };

export class Warming {
  readonly timeoutMs: number;
  readonly maxHeld: number;
  private readonly held = new Set<Held>();
  private closed = false;

  /** Throws a RangeError naming the bad setting (see `warmingOptionsError`). */
  constructor(o: WarmingOptions = {}) {
    const bad = warmingOptionsError(o);
    if (bad) throw new RangeError(bad);
    this.timeoutMs = o.timeoutMs ?? DEFAULT_WARMING_MS;
    this.maxHeld = o.maxHeld ?? DEFAULT_MAX_HELD;
  }

  /** Requests held now. */
  get size(): number {
    return this.held.size;
  }

  /**
   * Hold `ex` until the next configuration change (`release`) or its deadline, then call `retry`
   * with it (the request path runs again and holds it again if its routes are still missing — the
   * deadline stays the one set when it was first held). Undefined: held; else why not.
   */
  hold(ex: Exchange, retry: (ex: Exchange) => void): HoldRefusal | undefined {
    if (this.closed) return { reason: 'stopping' };
    if (this.maxHeld === 0) return { reason: 'disabled' };
    const t = ex as Tracked;
    const now = Date.now();
    const first = t[DEADLINE] === undefined;
    const deadline = (t[DEADLINE] ??= now + this.timeoutMs);
    if (now >= deadline) return { reason: 'expired', waitedMs: this.timeoutMs };
    if (this.held.size >= this.maxHeld) return { reason: 'full', held: this.held.size };
    const h: Held = { ex, retry, timer: undefined };
    h.timer = setTimeout(() => this.run(h), deadline - now);
    this.held.add(h);
    t[HELD] = h;
    // A client that goes away while held frees its place at once.
    if (first) ex.res.once('close', () => this.drop(t));
    return undefined;
  }

  /** The configuration changed: every held request runs again (those still missing routes are held again). */
  release(): void {
    if (this.held.size === 0) return;
    const all = [...this.held];
    for (const h of all) this.run(h);
  }

  /** Stop: held requests run now (and, finding no routes, are answered). */
  close(): void {
    this.closed = true;
    for (const h of [...this.held]) this.run(h);
  }

  private drop(t: Tracked): void {
    const h = t[HELD];
    if (h && this.held.delete(h)) clearTimeout(h.timer);
  }

  private run(h: Held): void {
    if (!this.held.delete(h)) return;
    clearTimeout(h.timer);
    const res = h.ex.res;
    if (res.destroyed || res.writableEnded) return; // the client went away meanwhile
    h.retry(h.ex);
  }
}
