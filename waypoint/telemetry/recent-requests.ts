// The waypoint's requests in the recent-records ring (common/recent-records.ts, 15020 /recent)
// without an object per request. A record object per request lived for the ring's 512 requests,
// which is longer than two scavenges of the waypoint's 2 MiB young generation: every record (and
// the request's authority string it held) was promoted to the old generation, to be collected by
// mark-compact — GC work per request and pauses in the latency tail. Here the facts sit in
// columns (numbers in typed arrays; strings only when they differ from the previous request's,
// so the long-lived column keeps an old string, and the request's own copy dies young), and the
// ring gets one reader function per slot, made once, that builds the record when /recent is read.
//
// The columns advance in step with the ring: this class must be the only one pushing into it
// (both start at slot 0 and move one slot per push, wrapping at the same capacity).
import type { RecentRecords } from '../../common/recent-records';

export interface RecentRequest {
  readonly identity: string | undefined;
  readonly service: string;
  readonly port: number;
  readonly method: string;
  readonly status: number;
  readonly flags: string;
  readonly detail: string;
  readonly cluster: string;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly durationMs: number;
}

/** A string column that keeps the previous slot's string when the new one is equal to it. */
function keep<T extends string | undefined>(col: T[], i: number, prev: number, v: T): void {
  const p = col[prev];
  col[i] = p === v ? p : v;
}

export class RecentRequests {
  private readonly capacity: number;
  private next = 0;
  private readonly identity: (string | undefined)[];
  private readonly service: string[];
  private readonly method: string[];
  private readonly flags: string[];
  private readonly detail: string[];
  private readonly cluster: string[];
  private readonly port: Int32Array;
  private readonly status: Int32Array;
  private readonly bytesSent: Float64Array;
  private readonly bytesReceived: Float64Array;
  private readonly durationMs: Float64Array;
  private readonly readers: Array<() => Record<string, unknown>>;

  constructor(private readonly ring: RecentRecords) {
    const n = (this.capacity = ring.capacity);
    this.identity = new Array<string | undefined>(n).fill(undefined);
    this.service = new Array<string>(n).fill('');
    this.method = new Array<string>(n).fill('');
    this.flags = new Array<string>(n).fill('');
    this.detail = new Array<string>(n).fill('');
    this.cluster = new Array<string>(n).fill('');
    this.port = new Int32Array(n);
    this.status = new Int32Array(n);
    this.bytesSent = new Float64Array(n);
    this.bytesReceived = new Float64Array(n);
    this.durationMs = new Float64Array(n);
    this.readers = Array.from({ length: n }, (_, i) => () => this.record(i));
  }

  push(r: RecentRequest, now?: number): void {
    const i = this.next;
    const prev = i === 0 ? this.capacity - 1 : i - 1;
    keep(this.identity, i, prev, r.identity);
    keep(this.service, i, prev, r.service);
    keep(this.method, i, prev, r.method);
    keep(this.flags, i, prev, r.flags);
    keep(this.detail, i, prev, r.detail);
    keep(this.cluster, i, prev, r.cluster);
    this.port[i] = r.port;
    this.status[i] = r.status;
    this.bytesSent[i] = r.bytesSent;
    this.bytesReceived[i] = r.bytesReceived;
    this.durationMs[i] = r.durationMs;
    this.next = i + 1 === this.capacity ? 0 : i + 1;
    this.ring.push(this.readers[i]!, now);
  }

  /** Slot i as the record /recent serves (the fields the waypoint always recorded). */
  private record(i: number): Record<string, unknown> {
    const detail = this.detail[i];
    const cluster = this.cluster[i];
    return {
      reporter: 'waypoint',
      src: { identity: this.identity[i] },
      dst: { service: this.service[i], port: this.port[i] },
      method: this.method[i],
      status: this.status[i],
      flags: this.flags[i],
      detail: detail || undefined,
      cluster: cluster || undefined,
      mtls: this.identity[i] !== undefined,
      bytes_sent: this.bytesSent[i],
      bytes_recv: this.bytesReceived[i],
      duration_ms: Math.round(this.durationMs[i]! * 1000) / 1000,
    };
  }
}
