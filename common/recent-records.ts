// A small bounded ring of a proxy's most recent access records (connections for the node proxy,
// requests for the waypoint), served next to the metrics on 15020 at /recent so that the control
// plane can show "what the proxies actually saw" (control/observe). Fixed capacity: pushing into a
// full ring overwrites the oldest record; memory is capacity x one record, whatever the traffic.
// A record holds only what the proxy's metrics already show (workloads, identities, service,
// bytes, flags, the deciding policy) plus the destination port, the HTTP method and status;
// never URL paths, headers or payload (docs/security.md).

/** Where a proxy serves its recent records (on its metrics port, 15020). */
export const RECENT_RECORDS_PATH = '/recent';

/** Records a proxy keeps by default. */
export const DEFAULT_RECENT_RECORDS = 512;

/** One record as served: a sequence number and time stamp the ring adds, then the proxy's fields. */
export interface RecentRecord {
  /** Increases by one per record pushed since the proxy started (so a reader can ask for newer ones). */
  readonly seq: number;
  /** Milliseconds since the epoch when the record was pushed. */
  readonly time: number;
  readonly [field: string]: unknown;
}

/** The JSON body of GET /recent. */
export interface RecentRecordsPage {
  readonly kind: 'RecentRecords';
  /** Who recorded them: "node-proxy" or "waypoint". */
  readonly proxy: string;
  /** The ring's capacity. */
  readonly capacity: number;
  /** The newest sequence number (0: nothing recorded yet). */
  readonly last: number;
  /** Oldest first; only those with seq > `since` when it was asked. */
  readonly records: readonly RecentRecord[];
}

export class RecentRecords {
  private readonly ring: (RecentRecord | undefined)[];
  private next = 0;
  private seq = 0;

  constructor(
    readonly proxy: string,
    readonly capacity: number = DEFAULT_RECENT_RECORDS,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`the recent-records capacity must be a positive integer, got ${capacity}`);
    this.ring = new Array<RecentRecord | undefined>(capacity);
  }

  /** Keeps one record (overwriting the oldest when full). */
  push(fields: Readonly<Record<string, unknown>>, now: number = Date.now()): void {
    this.seq++;
    this.ring[this.next] = { ...fields, seq: this.seq, time: now };
    this.next = (this.next + 1) % this.capacity;
  }

  /** Records newer than `since` (default all kept), oldest first, at most `limit` of the newest. */
  page(since = 0, limit: number = this.capacity): RecentRecordsPage {
    const out: RecentRecord[] = [];
    for (let i = 0; i < this.capacity; i++) {
      const r = this.ring[(this.next + i) % this.capacity];
      if (r !== undefined && r.seq > since) out.push(r);
    }
    return {
      kind: 'RecentRecords',
      proxy: this.proxy,
      capacity: this.capacity,
      last: this.seq,
      records: limit < out.length ? out.slice(out.length - limit) : out,
    };
  }

  /** The response to GET /recent?since=N&limit=M (a query value that is not a number is a 400). */
  respond(query: URLSearchParams): { status: number; body: string } {
    const since = numberParam(query.get('since'), 0);
    const limit = numberParam(query.get('limit'), this.capacity);
    if (since === undefined || limit === undefined)
      return { status: 400, body: `${JSON.stringify({ error: 'since and limit must be non-negative integers (GET /recent?since=SEQ&limit=N)' })}\n` };
    return { status: 200, body: `${JSON.stringify(this.page(since, limit))}\n` };
  }
}

function numberParam(text: string | null, dflt: number): number | undefined {
  if (text === null || text === '') return dflt;
  const n = Number(text);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}
