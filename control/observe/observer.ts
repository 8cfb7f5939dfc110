// The observer: every few seconds it reads each connected proxy's /metrics and /recent on 15020
// (targets.ts) — with a timeout per request, a cap on the body, a few at a time — and keeps what
// they said: the edges of the mesh graph with their rates (traffic.ts) and a bounded list of recent
// access records. A proxy that is down, slow or answers garbage costs one timeout and is shown as
// such; it never slows the control plane (all of it is asynchronous I/O off the request path) and
// its last good numbers are kept until it answers again or disconnects.
import http from 'node:http';
import type { Logger } from '../../common/log';
import { RECENT_RECORDS_PATH, type RecentRecord, type RecentRecordsPage } from '../../common/recent-records';
import { parsePrometheusText, type Sample } from './prometheus';
import { proxyTargets, type ConnectedClient, type ProxyTarget } from './targets';
import { addSamples, edgeViews, OBSERVED_METRICS, type EdgeTotals, type EdgeView } from './traffic';

export interface ObserverOptions {
  /** The proxies connected now (the xDS clients). */
  readonly clients: () => readonly ConnectedClient[];
  /** Between two polls (default 5 s). */
  readonly intervalMs?: number;
  /** Per request (default 2 s). */
  readonly timeoutMs?: number;
  /** Largest body read from one proxy (default 8 MiB; more is an error for that proxy). */
  readonly maxBodyBytes?: number;
  /** Proxies read at most (default 2,000; the rest are reported as skipped). */
  readonly maxTargets?: number;
  /** Requests in flight at once (default 16). */
  readonly concurrency?: number;
  /** Recent records kept over all proxies (default 5,000, the oldest dropped first). */
  readonly maxRecords?: number;
  /** The proxies' metrics port (default 15020; tests use another). */
  readonly port?: number;
  readonly log?: Logger;
}

/** One recent access record as gathered: the proxy's record plus who recorded it. */
export type ObservedRecord = RecentRecord & { readonly proxy: string; readonly proxyKind: ProxyTarget['kind'] };

/** Which records to return (all given conditions must hold). */
export interface RecordFilter {
  /** The source: a workload `ns/name` or a SPIFFE ID. */
  readonly from?: string;
  /** The destination: a workload `ns/name`, a Service hostname (or its `name.ns` prefix), or a SPIFFE ID. */
  readonly to?: string;
  /** The destination port. */
  readonly port?: number;
  /** Only records at or after this time (ms since the epoch). */
  readonly since?: number;
  /** The newest this many (default 100). */
  readonly limit?: number;
}

export interface ProxyObservation {
  readonly target: ProxyTarget;
  /** Time of the last attempt and of the last success (ms since the epoch). */
  readonly lastPoll?: number;
  readonly lastOk?: number;
  /** Why the last attempt failed (undefined: it worked). */
  readonly error?: string;
  /** Series read from its /metrics on the last success. */
  readonly series: number;
}

interface ProxyState {
  target: ProxyTarget;
  samples: Sample[];
  lastSeq: number;
  lastPoll?: number;
  lastOk?: number;
  error?: string;
}

export class Observer {
  private readonly proxies = new Map<string, ProxyState>();
  private records: ObservedRecord[] = [];
  private views = new Map<string, EdgeView>();
  private lastPollAt = 0;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private readonly listeners = new Set<() => void>();
  private skipped = 0;
  private stopped = false;

  constructor(private readonly o: ObserverOptions) {}

  get intervalMs(): number {
    return this.o.intervalMs ?? 5000;
  }

  start(): void {
    this.stopped = false;
    const tick = (): void => {
      this.running = this.pollOnce()
        .catch((err: unknown) => this.o.log?.warn({ err }, 'observer poll failed'))
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) {
            this.timer = setTimeout(tick, this.intervalMs);
            this.timer.unref();
          }
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** Called after each poll (the page streams the new state). */
  onUpdate(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The graph's edges from the last poll. */
  edges(): EdgeView[] {
    return [...this.views.values()];
  }

  /** Every proxy read and how that went. */
  proxyObservations(): ProxyObservation[] {
    return [...this.proxies.values()].map((p) => ({
      target: p.target,
      lastPoll: p.lastPoll,
      lastOk: p.lastOk,
      error: p.error,
      series: p.samples.length,
    }));
  }

  /** Connected proxies beyond maxTargets, not read on the last poll. */
  get skippedTargets(): number {
    return this.skipped;
  }

  /** Recent access records, oldest first (the module API `explain --observed` reads; docs/ui.md). */
  recentRecords(filter: RecordFilter = {}): ObservedRecord[] {
    const limit = filter.limit ?? 100;
    const out: ObservedRecord[] = [];
    for (let i = this.records.length - 1; i >= 0 && out.length < limit; i--) {
      const r = this.records[i]!;
      if (recordMatches(r, filter)) out.push(r);
    }
    return out.reverse();
  }

  /** Reads every connected proxy once (start() does this on its interval). */
  async pollOnce(): Promise<void> {
    const all = proxyTargets(this.o.clients(), this.o.port);
    const max = this.o.maxTargets ?? 2000;
    this.skipped = Math.max(0, all.length - max);
    const targets = all.slice(0, max);
    const keys = new Set(targets.map(targetKey));
    for (const k of [...this.proxies.keys()]) if (!keys.has(k)) this.proxies.delete(k);
    for (const t of targets) if (!this.proxies.has(targetKey(t))) this.proxies.set(targetKey(t), { target: t, samples: [], lastSeq: 0 });
    const queue = [...this.proxies.values()];
    const workers = Array.from({ length: Math.min(this.o.concurrency ?? 16, queue.length) }, async () => {
      for (let p = queue.shift(); p; p = queue.shift()) await this.pollProxy(p);
    });
    await Promise.all(workers);
    if (this.stopped) return;
    const now = Date.now();
    const totals = new Map<string, EdgeTotals>();
    for (const p of this.proxies.values()) addSamples(totals, p.samples, p.target.waypoint);
    this.views = edgeViews(totals, this.views, this.lastPollAt ? (now - this.lastPollAt) / 1000 : 0);
    this.lastPollAt = now;
    for (const l of this.listeners) l();
  }

  private async pollProxy(p: ProxyState): Promise<void> {
    p.lastPoll = Date.now();
    try {
      const base = `http://${p.target.address.includes(':') ? `[${p.target.address}]` : p.target.address}:${p.target.port}`;
      const text = await this.get(`${base}/metrics`);
      p.samples = parsePrometheusText(text, OBSERVED_METRICS);
      const page = JSON.parse(await this.get(`${base}${RECENT_RECORDS_PATH}?since=${p.lastSeq}`)) as RecentRecordsPage;
      // A restarted proxy numbers from 1 again: read all it has.
      if (page.last < p.lastSeq) p.lastSeq = 0;
      for (const r of page.records ?? []) {
        if (r.seq <= p.lastSeq) continue;
        this.records.push({ ...r, proxy: p.target.id, proxyKind: p.target.kind });
        p.lastSeq = r.seq;
      }
      const max = this.o.maxRecords ?? 5000;
      if (this.records.length > max) this.records = this.records.slice(this.records.length - max);
      p.lastOk = Date.now();
      p.error = undefined;
    } catch (err) {
      p.error = err instanceof Error ? err.message : String(err);
    }
  }

  private get(url: string): Promise<string> {
    const timeoutMs = this.o.timeoutMs ?? 2000;
    const maxBytes = this.o.maxBodyBytes ?? 8 * 1024 * 1024;
    return new Promise((resolve, reject) => {
      const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`GET ${url}: HTTP ${res.statusCode}`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxBytes) req.destroy(new Error(`GET ${url}: the answer is larger than ${maxBytes} bytes`));
          else chunks.push(c);
        });
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
      });
      // The whole exchange, not only idle time, is bounded.
      const deadline = setTimeout(() => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)), timeoutMs);
      req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.on('close', () => clearTimeout(deadline));
    });
  }
}

const targetKey = (t: ProxyTarget): string => `${t.id}@${t.address}:${t.port}`;

interface Side {
  workload?: string;
  identity?: string;
  service?: string;
  port?: number;
}

function recordMatches(r: ObservedRecord, f: RecordFilter): boolean {
  const src = (r.src ?? {}) as Side;
  const dst = (r.dst ?? {}) as Side;
  if (f.since !== undefined && r.time < f.since) return false;
  if (f.port !== undefined && dst.port !== f.port) return false;
  if (f.from !== undefined && src.workload !== f.from && src.identity !== f.from) return false;
  if (f.to !== undefined) {
    const svc = dst.service;
    const svcMatch = svc !== undefined && (svc === f.to || svc.startsWith(`${f.to}.`));
    if (dst.workload !== f.to && dst.identity !== f.to && !svcMatch) return false;
  }
  return true;
}
