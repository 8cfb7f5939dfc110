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

type Fields = Readonly<Record<string, unknown>>;

export class RecentRecords {
  // The fields as pushed, and the sequence number and time beside them: a record is put together
  // only when it is read (a spread copy per push was ~3 µs, on every request of the waypoint).
  // A record may also be pushed as a function that makes its fields, called only when read: the
  // node proxy's fields are five objects per connection that nobody reads unless /recent is asked.
  private readonly ring: (Fields | (() => Fields) | undefined)[];
  private readonly seqs: Float64Array;
  private readonly times: Float64Array;
  private next = 0;
  private seq = 0;

  constructor(
    readonly proxy: string,
    readonly capacity: number = DEFAULT_RECENT_RECORDS,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`the recent-records capacity must be a positive integer, got ${capacity}`);
    this.ring = new Array<Fields | (() => Fields) | undefined>(capacity);
    this.seqs = new Float64Array(capacity);
    this.times = new Float64Array(capacity);
  }

  /**
   * Keeps one record (overwriting the oldest when full). The ring keeps `fields` itself: do not
   * change it after. Given a function, the ring calls it each time the record is read, so what
   * it reads must not change either.
   */
  push(fields: Fields | (() => Fields), now: number = Date.now()): void {
    this.seq++;
    const i = this.next;
    this.ring[i] = fields;
    this.seqs[i] = this.seq;
    this.times[i] = now;
    this.next = i + 1 === this.capacity ? 0 : i + 1;
  }

  /** Records newer than `since` (default all kept), oldest first, at most `limit` of the newest. */
  page(since = 0, limit: number = this.capacity): RecentRecordsPage {
    const out: RecentRecord[] = [];
    for (let k = 0; k < this.capacity; k++) {
      const i = (this.next + k) % this.capacity;
      const r = this.ring[i];
      if (r !== undefined && this.seqs[i]! > since) out.push({ ...(typeof r === 'function' ? r() : r), seq: this.seqs[i]!, time: this.times[i]! });
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
