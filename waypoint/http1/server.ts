// The waypoint's downstream HTTP/1.1 server over any duplex (a TCP socket, an HBONE stream): its
// own parser (parse.ts) and a lean request/response pair instead of node:http's, so a request
// costs one read and one write each way and little JavaScript. What it does:
//   - keep-alive (HTTP/1.1 by default, HTTP/1.0 with `connection: keep-alive`); pipelined requests
//     are served one after another (the next head is read once the response before it is done,
//     and reading stops while more than a head's worth of them waits);
//   - request bodies by Content-Length or chunked, handed on with backpressure; `expect:
//     100-continue` answered; a body the response no longer needs is discarded up to 1 MiB, then
//     the connection closes;
//   - responses by Content-Length, chunked (HTTP/1.1) or until close (HTTP/1.0), bodiless for
//     HEAD, 1xx, 204 and 304;
//   - limits and timeouts: a head within 16 KiB and 100 lines (431), within 60 s of its first byte
//     (408); a connection idle for 60 s between requests or while a request arrives is closed;
//     malformed input gets 400/501/505 and the connection is closed (parse errors never reach the
//     request handler).
import { Readable, type Duplex } from 'node:stream';
import {
  ChunkedDecoder,
  DEFAULT_LIMITS,
  findHeadEnd,
  HeadError,
  keepsAlive,
  LengthDecoder,
  parseRequestHead,
  requestFraming,
  type BodyDecoder,
  type HeadLimits,
  type Headers,
  type RequestHead,
} from './parse';
import { LazyEvents } from './lazy-events';
import { headerLine, headerLines, httpDate, joined, statusLine, type OutgoingHeaders } from './serialize';
import { readInto, writeNow } from './socket-io';
import { StreamBackedRequest, type BodyListener } from './stream-backed';

export interface H1ServerOptions {
  readonly limits?: HeadLimits;
  /** From a head's first byte to its end (default 60 s). */
  readonly headersTimeoutMs?: number;
  /** Nothing received between requests or during a request's head and body (default 60 s). */
  readonly idleTimeoutMs?: number;
  /** Request body bytes read and discarded after the response is done (default 1 MiB). */
  readonly maxDiscardBytes?: number;
  /** Told when a connection is closed for a timeout: `request` (the head took too long, 408) or `idle`. */
  readonly onTimeout?: (kind: 'idle' | 'request') => void;
}

export type H1Handler = (req: H1Request, res: H1Response) => void;

/** Serve HTTP/1.1 on `socket` (bytes already read from it must have been unshifted back). */
export function serveHttp1(socket: Duplex, handler: H1Handler, o: H1ServerOptions = {}): void {
  new H1Connection(socket, handler, o);
}

/**
 * A downstream request: its head, and its body as a Readable made only when the request has one or
 * someone asks for it (most requests have none: no stream machinery, no listeners for them).
 * 'error' listeners wait for the body; a request destroyed with an error before it has one calls
 * them itself, as the stream would have.
 */
export class H1Request extends StreamBackedRequest {
  readonly httpVersionMajor = 1;
  readonly httpVersionMinor: number;
  readonly method: string;
  readonly url: string;
  readonly headers: Headers;
  /** The whole body arrived. */
  complete = false;
  /** Bodiless by its head: its end is pushed only when someone reads it (most requests are never read). */
  bodiless = false;
  trailers: Headers = {};
  private body: H1Body | undefined;
  /** 'error' listeners added before the body was made (the first one alone needs no array). */
  private errorListener: BodyListener | undefined;
  private errorListeners: BodyListener[] | undefined;
  constructor(
    private readonly conn: H1Connection,
    head: RequestHead,
  ) {
    super();
    this.method = head.method;
    this.url = head.target;
    this.headers = head.headers;
    this.httpVersionMinor = head.minor;
  }

  /** The body stream (made on first use). */
  override get stream(): Readable {
    if (this.body) return this.body;
    const b = (this.body = new H1Body(this.conn, this));
    if (this.errorListener) b.on('error', this.errorListener);
    if (this.errorListeners) for (const l of this.errorListeners) b.on('error', l);
    this.errorListener = undefined;
    this.errorListeners = undefined;
    return b;
  }

  get readableEnded(): boolean {
    return this.body !== undefined && this.body.readableEnded;
  }

  override on(event: string, fn: BodyListener): this {
    if (event !== 'error' || this.body !== undefined) this.stream.on(event, fn);
    else if (this.errorListener === undefined) this.errorListener = fn;
    else (this.errorListeners ??= []).push(fn);
    return this;
  }

  push(chunk: Buffer | null): boolean {
    return this.stream.push(chunk);
  }

  destroy(err?: Error): void {
    if (this.body) this.body.destroy(err);
    else if (err && this.errorListener) process.nextTick(emitError, [this.errorListener, ...(this.errorListeners ?? [])], err);
  }
}

function emitError(listeners: BodyListener[], err: Error): void {
  for (const l of listeners) (l as (e: Error) => void)(err);
}

/** The body of an H1Request, read from its connection with backpressure. */
class H1Body extends Readable {
  constructor(
    private readonly conn: H1Connection,
    private readonly req: H1Request,
  ) {
    super();
  }

  override _read(): void {
    if (this.req.bodiless) {
      this.req.bodiless = false;
      this.push(null);
      return;
    }
    this.conn.resumeBody();
  }
}

const CRLF = Buffer.from('\r\n', 'latin1');
/**
 * The one buffer every plain TCP downstream connection reads into (socket-io.ts): what it holds is
 * valid only while the read is handled; whatever outlives that (a partial or pipelined head, body
 * chunks) is copied out of it.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
/** Chunks up to this size are framed by copying into one buffer; larger ones are written corked. */
const COPY_LIMIT = 16 * 1024;
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade']);

enum Body {
  Length = 0,
  Chunked = 1,
  UntilClose = 2,
  None = 3,
}

/**
 * A downstream response: the subset of node:http's ServerResponse the waypoint uses. Its events
 * ('finish', 'close', 'drain'; never 'error') have an emitter only once a listener is added; the
 * request path's own end-of-response listener is `whenClosed`, called before the 'close' listeners.
 */
export class H1Response extends LazyEvents {
  statusCode = 200;
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  private extra: OutgoingHeaders | undefined;
  private given: OutgoingHeaders | undefined;
  private body = Body.Length;
  private trailers: Record<string, string> | undefined;
  private closedFn: ((ctx: never) => void) | undefined;
  private closedCtx: unknown;

  constructor(
    private readonly conn: H1Connection,
    private readonly method: string,
    private readonly minor: number,
    /** The connection stays open after this response. */
    public keepAlive: boolean,
  ) {
    super();
  }

  /** `fn(ctx)` is called (as a 'close' listener, before those) once when the response is over: ended, or cut by the connection's close. */
  whenClosed<T>(fn: (ctx: T) => void, ctx: T): void {
    this.closedFn = fn;
    this.closedCtx = ctx;
  }

  /** The response is over: 'finish' listeners ran (when it ended); now its close listeners. */
  closed(): void {
    const f = this.closedFn as ((ctx: unknown) => void) | undefined;
    if (f) {
      this.closedFn = undefined;
      const ctx = this.closedCtx;
      this.closedCtx = undefined;
      f(ctx);
    }
    this.emit('close');
  }

  setHeader(name: string, value: string | string[] | number): this {
    if (this.headersSent) throw new Error('cannot set a header after the response head was sent');
    (this.extra ??= {})[name.toLowerCase()] = value;
    return this;
  }

  getHeader(name: string): string | string[] | number | undefined {
    const k = name.toLowerCase();
    return this.given?.[k] ?? this.extra?.[k];
  }

  writeHead(status: number, headers?: OutgoingHeaders): this {
    if (this.headersSent) throw new Error('the response head was already sent');
    if (!Number.isInteger(status) || status < 100 || status > 999) throw new RangeError(`invalid status code ${status}`);
    this.statusCode = status;
    if (headers) this.given = headers;
    return this;
  }

  /** The head, with the framing and connection headers this response needs. */
  private head(knownLength: number | undefined): string {
    const status = this.statusCode;
    const given = this.given;
    const extra = this.extra;
    this.sawLength = false;
    this.sawDate = false;
    // One pass per header object (writeHead's win over setHeader's of the same name), hop-by-hop
    // headers left out, each name and value checked as it is written.
    let h = statusLine(status);
    if (extra) h = this.lines(h, extra, given);
    if (given) h = this.lines(h, given, undefined);
    if (this.method === 'HEAD' || status < 200 || status === 204 || status === 304) this.body = Body.None;
    else if (this.sawLength) this.body = Body.Length;
    else if (knownLength !== undefined) {
      this.body = Body.Length;
      h += `content-length: ${knownLength}\r\n`;
    } else if (this.minor === 1) {
      this.body = Body.Chunked;
      h += 'transfer-encoding: chunked\r\n';
    } else {
      this.body = Body.UntilClose;
      this.keepAlive = false;
    }
    if (!this.keepAlive) h += 'connection: close\r\n';
    else if (this.minor === 0) h += 'connection: keep-alive\r\n';
    if (!this.sawDate) h += `date: ${httpDate()}\r\n`;
    this.headersSent = true;
    return `${h}\r\n`;
  }

  private sawLength = false;
  private sawDate = false;

  /** `h` with the header lines of `src` (but those `over` has), noting content-length and date. */
  private lines(h: string, src: OutgoingHeaders, over: OutgoingHeaders | undefined): string {
    for (const k in src) {
      const v = src[k];
      if (v === undefined || (over !== undefined && over[k] !== undefined)) continue;
      const name = k.toLowerCase();
      if (HOP_BY_HOP.has(name)) continue;
      if (name === 'content-length') this.sawLength = true;
      else if (name === 'date') this.sawDate = true;
      h += headerLine(k, v);
    }
    return h;
  }

  write(chunk: Buffer | string): boolean {
    if (this.writableEnded || this.destroyed) return false;
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const head = this.headersSent ? '' : this.head(undefined);
    if (this.body === Body.None || data.length === 0) return head ? this.conn.send(Buffer.from(head, 'latin1')) : true;
    if (this.body !== Body.Chunked) return this.conn.send(head ? joined(head, data) : data);
    const prefix = `${head}${data.length.toString(16)}\r\n`;
    if (data.length <= COPY_LIMIT) {
      const out = Buffer.allocUnsafe(prefix.length + data.length + 2);
      out.write(prefix, 0, 'latin1');
      data.copy(out, prefix.length);
      out[out.length - 2] = 13;
      out[out.length - 1] = 10;
      return this.conn.send(out);
    }
    return this.conn.sendMany(Buffer.from(prefix, 'latin1'), data, CRLF);
  }

  addTrailers(t: Record<string, string>): void {
    this.trailers = t;
  }

  end(chunk?: Buffer | string): this {
    if (this.writableEnded || this.destroyed) return this;
    const data = chunk === undefined ? undefined : typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (!this.headersSent) {
      const head = this.head(data?.length ?? 0);
      this.conn.send(this.body === Body.None ? Buffer.from(head, 'latin1') : joined(head, data));
    } else {
      if (data && data.length) this.write(data);
      if (this.body === Body.Chunked) {
        let last = '0\r\n';
        if (this.trailers) {
          try {
            last += headerLines(this.trailers);
          } catch {
            // an invalid trailer is dropped, as the body is already on its way
          }
        }
        this.conn.send(Buffer.from(`${last}\r\n`, 'latin1'));
      }
    }
    this.writableEnded = true;
    this.conn.responseEnded(this, this.body === Body.UntilClose);
    // 'finish' and 'close' now, not on the next tick: the bytes are with the socket, and a tick
    // per request made node run its tick queue after every response's callback. Listeners are
    // added before end() is called (the request path's are added when the request arrives).
    finished(this);
    return this;
  }

  /** Abandon the response: the connection is closed (the client sees a cut response or none). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.conn.destroy();
  }

  /** The connection closed before the response ended. */
  aborted(): void {
    if (this.writableEnded) return; // 'finish' and 'close' were emitted by end()
    this.destroyed = true;
    this.closed();
  }
}

function finished(res: H1Response): void {
  if (res.destroyed && !res.writableEnded) return;
  res.writableFinished = true;
  res.emit('finish');
  res.closed();
}

enum State {
  Head = 0,
  Body = 1,
  Waiting = 2,
  Closed = 3,
}

class H1Connection {
  private pending: Buffer | undefined;
  private searched = 0;
  private state = State.Head;
  private req: H1Request | undefined;
  private res: H1Response | undefined;
  private decoder: BodyDecoder | undefined;
  private responseDone = false;
  private discarding = false;
  private discarded = 0;
  private bodyPaused = false;
  private heldBack = false;
  private peerEnded = false;
  private headStartedAt = 0;
  /** The bytes being handled lie in READ_BUFFER (copy what is kept). */
  private shared = false;
  /**
   * When the connection was last seen active: read from or written to since the check before
   * (the idle check runs every quarter of the idle time, so a connection is closed after the idle
   * time plus at most a quarter of it, as with a clock read at every read and write).
   */
  private lastActive = Date.now();
  private active = false;
  private readonly timer: NodeJS.Timeout;
  private readonly limits: HeadLimits;
  private readonly headersTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly maxDiscard: number;
  private readonly onTimeout: ((kind: 'idle' | 'request') => void) | undefined;

  constructor(
    private readonly socket: Duplex,
    private readonly handler: H1Handler,
    o: H1ServerOptions,
  ) {
    this.limits = o.limits ?? DEFAULT_LIMITS;
    this.headersTimeoutMs = o.headersTimeoutMs ?? 60_000;
    this.idleTimeoutMs = o.idleTimeoutMs ?? 60_000;
    this.maxDiscard = o.maxDiscardBytes ?? 1024 * 1024;
    this.onTimeout = o.onTimeout;
    socket.on('end', this.onEnd);
    socket.on('error', ignore);
    socket.on('close', this.onClose);
    socket.on('drain', this.onDrain);
    this.timer = setTimeout(idleCheck, Math.max(10, Math.min(this.idleTimeoutMs, this.headersTimeoutMs) / 4), this);
    this.timer.unref();
    // A plain TCP socket reads into the shared buffer; bytes already read (unshifted by the
    // caller) are handled first. Anything else (an HBONE stream) emits 'data'.
    if (readInto(socket, READ_BUFFER, this.onRead)) {
      const first = socket.read() as Buffer | null;
      if (first !== null) this.onData(first);
    } else socket.on('data', this.onData);
  }

  private readonly onRead = (n: number): void => {
    this.active = true;
    if (this.state === State.Closed) return;
    const chunk = READ_BUFFER.subarray(0, n);
    if (this.pending) {
      this.pending = Buffer.concat([this.pending, chunk]);
      this.process();
      return;
    }
    this.pending = chunk;
    this.shared = true;
    try {
      this.process();
    } finally {
      this.shared = false;
      // A partial head, or pipelined requests after this one: kept past this read.
      if (this.pending !== undefined && this.pending.buffer === READ_BUFFER.buffer) this.pending = Buffer.from(this.pending);
    }
  };

  private readonly onData = (chunk: Buffer): void => {
    this.active = true;
    if (this.state === State.Closed) return;
    this.pending = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.process();
  };

  private readonly onDrain = (): void => {
    this.res?.emit('drain');
  };

  private readonly onEnd = (): void => {
    this.peerEnded = true;
    if (this.state === State.Head) return this.close();
    if (this.state === State.Body) this.req?.destroy(new Error('aborted: the client closed before the request body ended'));
    // A FIN while the request waits for its response (held for its routes, or in flight upstream):
    // the client went away, as Envoy reads it (its HTTP connections are not half-open): the
    // connection is closed, and the response's 'close' abandons the request (flag DC) and its
    // upstream attempt, instead of it waiting out the warming or route timeout.
    else if (this.state === State.Waiting) this.destroy();
  };

  private readonly onClose = (): void => {
    this.state = State.Closed;
    clearTimeout(this.timer);
    if (this.req && !this.req.complete) this.req.destroy(new Error('aborted: the connection closed'));
    this.res?.aborted();
  };

  private readonly onBody = (chunk: Buffer): void => {
    if (this.discarding) {
      this.discarded += chunk.length;
      if (this.discarded > this.maxDiscard) this.destroy();
      return;
    }
    if (!this.req!.push(this.shared ? Buffer.from(chunk) : chunk) && !this.bodyPaused) {
      this.bodyPaused = true;
      this.socket.pause();
    }
  };

  /** The request's reader wants more. */
  resumeBody(): void {
    if (!this.bodyPaused) return;
    this.bodyPaused = false;
    if (!this.heldBack) this.socket.resume();
  }

  send(b: Buffer): boolean {
    this.active = true;
    return writeNow(this.socket, b);
  }

  sendMany(a: Buffer, b: Buffer, c: Buffer): boolean {
    this.active = true;
    this.socket.cork();
    this.socket.write(a);
    this.socket.write(b);
    const ok = this.socket.write(c);
    this.socket.uncork();
    return ok;
  }

  destroy(): void {
    this.state = State.Closed;
    this.socket.destroy();
  }

  /** Close after what was written (FIN). */
  private close(): void {
    this.state = State.Closed;
    clearTimeout(this.timer);
    this.socket.end();
  }

  /** Whether the connection closed (re-read after calls that may close it). */
  private get closed(): boolean {
    return this.state === State.Closed;
  }

  /** Whether the next head may be read. */
  private get ready(): boolean {
    return this.state === State.Head;
  }

  private process(): void {
    for (;;) {
      switch (this.state) {
        case State.Head:
          if (!this.readHead()) return;
          break;
        case State.Body:
          if (!this.readBody()) return;
          break;
        case State.Waiting:
          // Pipelined requests wait for this response; stop reading while more than a head's worth waits.
          if (this.pending && this.pending.length > this.limits.maxHeadBytes && !this.heldBack) {
            this.heldBack = true;
            this.socket.pause();
          }
          return;
        default:
          return;
      }
    }
  }

  /** Parse the next head if it is all here; false when there is nothing more to do now. */
  private readHead(): boolean {
    let buf = this.pending;
    if (!buf) return false;
    // Empty lines before a request line are ignored (RFC 9112 2.2), a few of them.
    let skip = 0;
    while (skip + 1 < buf.length && skip < 8 && buf[skip] === 13 && buf[skip + 1] === 10) skip += 2;
    if (skip) {
      buf = skip < buf.length ? buf.subarray(skip) : undefined;
      this.pending = buf;
      this.searched = 0;
      if (!buf) return false;
    }
    const end = findHeadEnd(buf, 0, this.searched);
    if (end < 0) {
      // A head not all here yet: it has the head timeout from its first byte on.
      const now = Date.now();
      if (this.headStartedAt === 0) this.headStartedAt = now;
      if (buf.length > this.limits.maxHeadBytes) this.refuse(431, `a request head larger than ${this.limits.maxHeadBytes} bytes`);
      else if (now - this.headStartedAt > this.headersTimeoutMs) {
        this.onTimeout?.('request');
        this.refuse(408, 'the request head took too long');
      } else this.searched = buf.length;
      return false;
    }
    let head: RequestHead;
    let framing: ReturnType<typeof requestFraming>;
    try {
      head = parseRequestHead(buf, 0, end, this.limits);
      framing = requestFraming(head);
    } catch (err) {
      this.refuse(err instanceof HeadError ? err.status : 400, err instanceof Error ? err.message : String(err));
      return false;
    }
    this.pending = end < buf.length ? buf.subarray(end) : undefined;
    this.searched = 0;
    this.headStartedAt = 0;
    const expect = head.headers.expect;
    if (expect !== undefined) {
      if ((expect as string).toLowerCase() !== '100-continue') {
        this.refuse(417, `expectation ${JSON.stringify(expect)} is not supported`);
        return false;
      }
      if (framing.kind !== 'none' && head.minor === 1) this.send(Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1'));
    }
    const req = new H1Request(this, head);
    const res = new H1Response(this, head.method, head.minor, keepsAlive(head.minor, head.headers) && !this.peerEnded);
    this.req = req;
    this.res = res;
    this.responseDone = false;
    if (framing.kind === 'none') {
      req.complete = true;
      req.bodiless = true;
      this.state = State.Waiting;
    } else {
      this.decoder =
        framing.kind === 'chunked' ? new ChunkedDecoder(this.onBody, this.limits) : new LengthDecoder((framing as { length: number }).length, this.onBody);
      this.state = State.Body;
    }
    this.handler(req, res);
    return !this.closed;
  }

  /** Feed the body decoder; false when it needs more bytes (or the connection is done). */
  private readBody(): boolean {
    const buf = this.pending;
    if (!buf) return false;
    const d = this.decoder!;
    let used: number;
    try {
      used = d.feed(buf, 0, buf.length);
    } catch (err) {
      this.req?.destroy(err instanceof Error ? err : new Error(String(err)));
      if (this.res?.headersSent) this.destroy();
      else this.refuse(err instanceof HeadError ? err.status : 400, err instanceof Error ? err.message : String(err));
      return false;
    }
    if (this.closed) return false;
    this.pending = used < buf.length ? buf.subarray(used) : undefined;
    if (!d.done) return false;
    const req = this.req!;
    req.complete = true;
    if (d instanceof ChunkedDecoder) req.trailers = d.trailers;
    this.decoder = undefined;
    if (!this.discarding) req.push(null);
    this.state = State.Waiting;
    // The body is all here: reading no longer waits for its reader (an ended stream asks for no
    // more, so a pause for the last chunk would otherwise hold the connection's next request).
    if (this.bodyPaused) {
      this.bodyPaused = false;
      if (!this.heldBack) this.socket.resume();
    }
    if (this.responseDone) this.next();
    return this.ready;
  }

  /** The response ended (its bytes are written); `untilClose`: it is delimited by closing. */
  responseEnded(res: H1Response, untilClose: boolean): void {
    if (res !== this.res || this.state === State.Closed) return;
    this.responseDone = true;
    if (!res.keepAlive || untilClose) return this.close();
    if (this.state === State.Waiting) return this.next();
    if (this.state === State.Body) {
      // The response is done before the request body: read the rest and drop it (bounded).
      this.discarding = true;
      if (this.bodyPaused) {
        this.bodyPaused = false;
        this.socket.resume();
      }
    }
  }

  /** Ready for the next request on this connection. */
  private next(): void {
    this.req = undefined;
    this.res = undefined;
    this.discarding = false;
    this.discarded = 0;
    this.state = State.Head;
    this.headStartedAt = 0;
    if (this.peerEnded && !this.pending) return this.close();
    if (this.heldBack) {
      this.heldBack = false;
      if (!this.bodyPaused) this.socket.resume();
    }
    // Pipelined bytes already here are parsed after the current call stack (the response's end).
    if (this.pending) process.nextTick(processNT, this);
  }

  runPending(): void {
    if (this.state === State.Head) this.process();
  }

  /** Answer a malformed or refused request and close. */
  private refuse(status: number, message: string): void {
    const body = `${message}\n`;
    const head = `${statusLine(status)}content-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\ndate: ${httpDate()}\r\n\r\n`;
    this.pending = undefined;
    if (this.socket.writable) this.socket.write(Buffer.from(head + body, 'latin1'));
    this.close();
  }

  /** The idle and head timeouts, checked by one timer per connection every quarter of the shorter one. */
  checkTimers(): void {
    if (this.state === State.Closed) return;
    const now = Date.now();
    if (this.active) {
      this.active = false;
      this.lastActive = now;
    }
    if (this.state === State.Head && this.headStartedAt !== 0 && now - this.headStartedAt > this.headersTimeoutMs) {
      this.onTimeout?.('request');
      return this.refuse(408, 'the request head took too long');
    }
    // Waiting for the response is not idleness (the route's timeouts govern it).
    if (this.state !== State.Waiting && now - this.lastActive >= this.idleTimeoutMs) {
      this.onTimeout?.('idle');
      return this.destroy();
    }
    this.timer.refresh();
  }
}

function processNT(c: H1Connection): void {
  c.runPending();
}

function idleCheck(c: H1Connection): void {
  c.checkTimers();
}

function ignore(): void {}
