// The waypoint's upstream HTTP/1.1 client: a keep-alive pool per endpoint, over plain TCP or over
// connections the caller opens (HBONE tunnels to mesh endpoints)
// (at most the cluster's max_connections sockets; requests beyond wait for a free one) and one
// call object per request that writes the head with the body's first bytes, parses the response
// with parse.ts and hands the body on as a Readable with backpressure. A connection is reused only
// when both messages were complete and framed (not delimited by close) and the server did not
// say `connection: close`.
import { connect } from 'node:net';
import { Readable, type Duplex } from 'node:stream';
import {
  ChunkedDecoder,
  DEFAULT_LIMITS,
  findHeadEnd,
  HeadError,
  keepsAlive,
  LengthDecoder,
  parseResponseHead,
  responseFraming,
  type BodyDecoder,
  type Headers,
  type ResponseHead,
} from './parse';
import { LazyEvents } from './lazy-events';
import { headerLines, type OutgoingHeaders } from './serialize';
import { writeNow } from './socket-io';

export type H1FailureKind = 'connect-failure' | 'reset';

/** A response head with its body (the shape of the waypoint's UpstreamHead). */
export interface H1ResponseHead {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Readable;
  /**
   * The whole body, when it arrived with the head (Content-Length, all of it in the same read, or
   * none by the framing): the response is complete, and `body` is only made if it is asked for.
   */
  readonly whole?: Buffer;
  onComplete(done: (trailers: Headers) => void): void;
}

export interface H1CallListener {
  onHead(head: H1ResponseHead): void;
  onFailure(kind: H1FailureKind, message: string): void;
}

const CALL = Symbol('nodemesh.h1.call');
const CONNECTED = Symbol('nodemesh.h1.connected');
const FAILURE = Symbol('nodemesh.h1.error');
const SHARED_READS = Symbol('nodemesh.h1.sharedReads');
/** When a pooled connection stops being reused (ms since the epoch): before the backend's announced keep-alive timeout. */
const KEEP_UNTIL = Symbol('nodemesh.h1.keepUntil');
/** The connection carried a request before the one on it now (it came from the pool, not from connect). */
const REUSED = Symbol('nodemesh.h1.reused');
/**
 * How long before the backend's announced keep-alive timeout (`Keep-Alive: timeout=N`) a pooled
 * connection is retired: a request sent closer to it may cross the backend's close and fail (undici
 * keeps the same 1 s).
 */
export const KEEP_ALIVE_MARGIN_MS = 1000;

const KEEP_ALIVE_TIMEOUT = /(?:^|[\s,;])timeout\s*=\s*(\d{1,9})(?:$|[\s,;])/i;

/** The keep-alive timeout a `Keep-Alive` header's value announces, in ms; undefined when it names none. */
export function keepAliveTimeoutMs(value: string | string[]): number | undefined {
  const m = KEEP_ALIVE_TIMEOUT.exec(Array.isArray(value) ? value.join(',') : value);
  return m ? Number(m[1]) * 1000 : undefined;
}

/** A pooled connection: a TCP socket or an opened stream (an HBONE tunnel), each with an idle timeout. */
export type Connection = Duplex & { setTimeout(ms: number): unknown };
type PooledSocket = Connection & {
  [CALL]?: H1Call;
  [CONNECTED]?: boolean;
  [FAILURE]?: NodeJS.ErrnoException;
  [SHARED_READS]?: boolean;
  [KEEP_UNTIL]?: number;
  [REUSED]?: boolean;
};

/** A pooled connection that cannot carry another request: closed, or past its keep-alive deadline (then closed here). */
function spent(s: PooledSocket): boolean {
  if (s.destroyed || s.readableEnded) return true;
  const until = s[KEEP_UNTIL];
  if (until === undefined || until > Date.now()) return false;
  s.destroy();
  return true;
}

/**
 * The one buffer every plain TCP upstream connection reads into (node:net's `onread`): no buffer
 * allocated per read and no stream machinery per chunk. What it holds is valid only while the
 * read is handled; whatever outlives that (a partial head, a body) is copied out.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** `buf[from, to)`, copied when it lies in the shared read buffer. */
function kept(buf: Buffer, from: number, to: number, shared: boolean): Buffer {
  if (!shared) return from === 0 && to === buf.length ? buf : buf.subarray(from, to);
  const copy = Buffer.allocUnsafe(to - from);
  buf.copy(copy, 0, from, to);
  return copy;
}

/**
 * The pool's fields on a new connection, all set at once in one order: every pooled socket has the
 * same shape from the start (fields added one by one as they were first needed gave sockets many
 * shapes, and the code reading them megamorphic property look-ups).
 */
function pooledFields(s: PooledSocket, sharedReads: boolean): PooledSocket {
  s[CALL] = undefined;
  s[CONNECTED] = false;
  s[FAILURE] = undefined;
  s[SHARED_READS] = sharedReads;
  s[KEEP_UNTIL] = undefined;
  s[REUSED] = false;
  return s;
}

const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EADDRNOTAVAIL']);
/** Methods sent without a Content-Length when they have no body (node:http's choice). */
const BODILESS_BY_DEFAULT = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);
/**
 * Methods sent again, once, on a new connection when a reused one closes before any byte of the
 * response (RFC 9110 9.2.2's idempotent methods; Go's transport and undici do the same): the server
 * closed an idle keep-alive connection as the request went out, and cannot have acted on it twice.
 */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const QUEUE_LIMIT = 64 * 1024;
/** Whether `s` is all visible ASCII (0x21-0x7e): a path or authority that cannot split the request line or Host. */
function visibleAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

export interface H1PoolOptions {
  readonly host: string;
  readonly port: number;
  maxConnections: number;
  readonly connectTimeoutMs: number;
  /** Idle pooled connections close after this long (default 60 s). */
  readonly idleTimeoutMs?: number;
  /**
   * Opens a connection instead of TCP to host:port (an HBONE tunnel): `done` gets it established,
   * or an error — a connect failure for the request waiting for it (bounded by its own timeout).
   */
  readonly open?: (done: (err: Error | undefined, connection?: Connection) => void) => void;
  /** A request was sent again on a new connection: the reused one closed before any response byte (counted by the caller). */
  readonly onResent?: () => void;
}

/** The keep-alive connections to one endpoint. */
export class H1Pool {
  private readonly idle: PooledSocket[] = [];
  private readonly waiting: H1Call[] = [];
  private open = 0;
  private closed = false;
  /** The last `Keep-Alive` value read from this endpoint and its timeout (a backend sends the same one every time). */
  private keepAliveText: string | undefined;
  private keepAliveMs: number | undefined;

  constructor(readonly o: H1PoolOptions) {}

  /** The keep-alive timeout (ms) a response's `Keep-Alive` value announces, parsed once per distinct value. */
  announcedKeepAliveMs(value: string | string[]): number | undefined {
    if (typeof value !== 'string') return keepAliveTimeoutMs(value);
    if (value !== this.keepAliveText) {
      this.keepAliveText = value;
      this.keepAliveMs = keepAliveTimeoutMs(value);
    }
    return this.keepAliveMs;
  }

  /** One request: `listener` hears its response head or failure, never from inside this call. */
  request(method: string, path: string, authority: string, headers: OutgoingHeaders, listener: H1CallListener): H1Call {
    const call = new H1Call(this, method, path, authority, headers, listener);
    this.assign(call);
    return call;
  }

  /** Connections open now (idle and busy). */
  get size(): number {
    return this.open;
  }

  private assign(call: H1Call): void {
    let s = this.idle.pop();
    while (s && spent(s)) s = this.idle.pop();
    if (s) return call.start(s);
    if (this.open < this.o.maxConnections) return this.connect(call);
    this.waiting.push(call);
  }

  /** A new connection for `call`: TCP at once (writes wait for the connect), or opened by `o.open`. */
  private connect(call: H1Call): void {
    this.open++;
    const opener = this.o.open;
    if (!opener) {
      const s = connect({
        host: this.o.host,
        port: this.o.port,
        noDelay: true,
        onread: { buffer: READ_BUFFER, callback: (n: number) => onPooledRead(s, n) },
      }) as PooledSocket;
      pooledFields(s, true);
      const timer = setTimeout(connectTimedOut, this.o.connectTimeoutMs, s, this.o.connectTimeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s[CONNECTED] = true;
      });
      s.once('close', () => clearTimeout(timer));
      return call.start(this.adopt(s));
    }
    opener((err, c) => {
      if (err || !c) {
        this.open--;
        call.fail('connect-failure', err?.message ?? 'no connection');
        this.serveWaiting();
        return;
      }
      const s = this.adopt(pooledFields(c as PooledSocket, false));
      s[CONNECTED] = true;
      if (this.closed) {
        s.destroy();
        call.fail('connect-failure', 'the waypoint is shutting down');
        return;
      }
      call.start(s);
    });
  }

  /** The pool's handlers on a new connection. */
  private adopt(s: PooledSocket): PooledSocket {
    if (!s[SHARED_READS]) s.on('data', onPooledData);
    s.on('end', onPooledEnd);
    s.on('drain', onPooledDrain);
    s.on('error', onPooledError);
    s.on('timeout', onPooledTimeout);
    s.once('close', () => {
      this.open--;
      const i = this.idle.indexOf(s);
      if (i >= 0) this.idle.splice(i, 1);
      const c = s[CALL];
      s[CALL] = undefined;
      c?.socketClosed(s);
      this.serveWaiting();
    });
    s.setTimeout(this.o.idleTimeoutMs ?? 60_000);
    return s;
  }

  private serveWaiting(): void {
    while (this.waiting.length && !this.closed) {
      const c = this.waiting.shift()!;
      if (c.aborted) continue;
      if (!this.idle.length && this.open >= this.o.maxConnections) {
        this.waiting.unshift(c);
        return;
      }
      this.assign(c);
    }
  }

  /** A call is done with its connection: keep it for the next request, or close it. */
  release(s: PooledSocket, reusable: boolean): void {
    s[CALL] = undefined;
    if (!reusable || this.closed || s.destroyed) {
      s.destroy();
      return;
    }
    s.resume();
    s[REUSED] = true;
    const next = this.waiting.shift();
    if (next && !next.aborted) return next.start(s);
    if (next) this.serveWaiting();
    this.idle.push(s);
    if (this.waiting.length) this.serveWaiting();
  }

  /** `call`'s reused connection closed before any response byte: send it again on a new connection (or the next free one at max_connections). */
  resend(call: H1Call): void {
    this.o.onResent?.();
    if (this.closed) return call.fail('reset', 'upstream reset: the waypoint is shutting down');
    if (this.open < this.o.maxConnections) return this.connect(call);
    this.waiting.push(call);
  }

  /** Forget a waiting call (aborted before it had a connection). */
  unqueue(call: H1Call): void {
    const i = this.waiting.indexOf(call);
    if (i >= 0) this.waiting.splice(i, 1);
  }

  close(): void {
    this.closed = true;
    for (const s of this.idle) s.destroy();
    this.idle.length = 0;
    for (const c of this.waiting.splice(0)) c.fail('connect-failure', 'the waypoint is shutting down');
  }
}

function connectTimedOut(s: PooledSocket, ms: number): void {
  const err: NodeJS.ErrnoException = new Error(`no connection within ${ms} ms`);
  err.code = 'ETIMEDOUT';
  s.destroy(err);
}

function onPooledData(this: PooledSocket, chunk: Buffer): void {
  const c = this[CALL];
  if (c) c.onData(chunk, false);
  else this.destroy(); // bytes nobody asked for: the connection is out of step
}

/** `n` bytes read into READ_BUFFER; false pauses the connection (a body's reader is behind). */
function onPooledRead(s: PooledSocket, n: number): boolean {
  const c = s[CALL];
  if (!c) {
    s.destroy(); // bytes nobody asked for: the connection is out of step
    return false;
  }
  c.onData(READ_BUFFER.subarray(0, n), true);
  return !s.isPaused();
}

/**
 * The server ended its side (e.g. its keep-alive timeout). A TCP socket then ends ours by itself;
 * a tunnel stream (half-open allowed) would stay writable and take the next request to nobody, so
 * it is ended here too (closed at once when idle).
 */
function onPooledEnd(this: PooledSocket): void {
  if (this[CALL]) this.end();
  else this.destroy();
}

function onPooledDrain(this: PooledSocket): void {
  this[CALL]?.emit('drain');
}

function onPooledError(this: PooledSocket, err: NodeJS.ErrnoException): void {
  this[FAILURE] = err;
}

function onPooledTimeout(this: PooledSocket): void {
  if (!this[CALL]) this.destroy();
}

enum Out {
  Undecided = 0,
  Length = 1,
  Chunked = 2,
}

enum In {
  Head = 0,
  Body = 1,
  Done = 2,
}

/**
 * One request on a pooled connection; also the sink its body is written to (`sink`: itself). Its
 * one event is 'drain'; it never emits 'error' (failures go to its listener), so 'error' listeners
 * are not kept.
 */
export class H1Call extends LazyEvents {
  aborted = false;
  get sink(): this {
    return this;
  }

  override on(event: string, fn: Parameters<LazyEvents['on']>[1]): this {
    return event === 'error' ? this : super.on(event, fn);
  }
  private socket: PooledSocket | undefined;
  private head: string;
  private out = Out.Undecided;
  private queued: Buffer[] | undefined;
  private queuedBytes = 0;
  private requestEnded = false;
  private settled = false;
  private state = In.Head;
  private buf: Buffer | undefined;
  private searched = 0;
  private decoder: BodyDecoder | undefined;
  private untilClose = false;
  private reusable = false;
  private body: H1ResponseBody | undefined;
  private trailers: Headers = {};
  private whenComplete: ((t: Headers) => void) | undefined;
  /** The bytes being handled lie in READ_BUFFER. */
  private shared = false;
  /** The request as sent while it is only a head (no body byte written): what a resend writes again. */
  private replay: string | undefined;
  /** Some byte of the response arrived on this call's connection. */
  private answered = false;
  private resent = false;

  constructor(
    private readonly pool: H1Pool,
    private readonly method: string,
    path: string,
    authority: string,
    private readonly headers: OutgoingHeaders,
    private readonly listener: H1CallListener,
  ) {
    super();
    // Invalid names or values throw here, before anything is sent.
    if (!visibleAscii(path) || !visibleAscii(authority))
      throw new HeadError(500, 'a path or authority with whitespace, a control character or a non-ASCII character');
    this.head = `${method} ${path} HTTP/1.1\r\nhost: ${authority}\r\n${headerLines(headers)}`;
  }

  /** The request's head with its framing header, once the body's shape is known. */
  private headFor(hasBody: boolean): string {
    if (this.headers['content-length'] !== undefined) this.out = Out.Length;
    else if (hasBody) {
      this.out = Out.Chunked;
      this.head += 'transfer-encoding: chunked\r\n';
    } else {
      this.out = Out.Length;
      if (!BODILESS_BY_DEFAULT.has(this.method)) this.head += 'content-length: 0\r\n';
    }
    return `${this.head}\r\n`;
  }

  write(chunk: Buffer): boolean {
    if (this.requestEnded || this.aborted) return false;
    if (chunk.length === 0) return true;
    this.replay = undefined; // a body went out: the request cannot be sent again
    const head = this.out === Out.Undecided ? this.headFor(true) : '';
    if (this.out === Out.Chunked) return this.emitBytes(Buffer.from(`${head}${chunk.length.toString(16)}\r\n`, 'latin1'), chunk, CRLF);
    return head ? this.emitBytes(Buffer.from(head, 'latin1'), chunk) : this.emitBytes(chunk);
  }

  end(chunk?: Buffer): void {
    if (this.requestEnded || this.aborted) return;
    if (chunk?.length) this.write(chunk);
    if (this.out === Out.Undecided) {
      // A head alone goes out as latin1 text, without a Buffer made for it.
      const head = this.headFor(false);
      if (IDEMPOTENT.has(this.method)) this.replay = head;
      if (this.socket) writeNow(this.socket, head);
      else this.emitBytes(Buffer.from(head, 'latin1'));
    } else if (this.out === Out.Chunked) this.emitBytes(LAST_CHUNK);
    this.requestEnded = true;
    if (this.state === In.Done) this.finish();
  }

  private emitBytes(a: Buffer, b?: Buffer, c?: Buffer): boolean {
    const s = this.socket;
    if (!s) {
      const q = (this.queued ??= []);
      q.push(a);
      this.queuedBytes += a.length;
      if (b) {
        q.push(b);
        this.queuedBytes += b.length;
      }
      if (c) {
        q.push(c);
        this.queuedBytes += c.length;
      }
      return this.queuedBytes < QUEUE_LIMIT;
    }
    if (!b) return writeNow(s, a);
    s.cork();
    s.write(a);
    let ok = s.write(b);
    if (c) ok = s.write(c);
    s.uncork();
    return ok;
  }

  /** The connection for this call (new or reused). */
  start(s: PooledSocket): void {
    if (this.aborted) {
      this.pool.release(s, s[CONNECTED] === true);
      return;
    }
    this.socket = s;
    s[CALL] = this;
    const q = this.queued;
    if (q) {
      const wasFull = this.queuedBytes >= QUEUE_LIMIT;
      this.queued = undefined;
      this.queuedBytes = 0;
      let ok = true;
      if (q.length === 1) ok = s.write(q[0]!);
      else {
        s.cork();
        for (const b of q) ok = s.write(b);
        s.uncork();
      }
      if (wasFull && ok) process.nextTick(emitDrain, this);
    }
  }

  fail(kind: H1FailureKind, message: string): void {
    if (this.settled) return;
    this.settled = true;
    this.listener.onFailure(kind, message);
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const s = this.socket;
    if (!s) return this.pool.unqueue(this);
    if (this.state !== In.Done) s.destroy();
  }

  /** Bytes from the connection; `shared`: they lie in READ_BUFFER (copy what is kept). */
  onData(chunk: Buffer, shared: boolean): void {
    this.answered = true;
    const joined = this.buf !== undefined;
    const buf = joined ? Buffer.concat([this.buf!, chunk]) : chunk;
    this.buf = undefined;
    this.shared = shared && !joined;
    let at = 0;
    try {
      while (at < buf.length) {
        if (this.state === In.Head) {
          const end = findHeadEnd(buf, at, this.searched);
          if (end < 0) {
            if (buf.length - at > DEFAULT_LIMITS.maxHeadBytes) throw new HeadError(502, `a response head larger than ${DEFAULT_LIMITS.maxHeadBytes} bytes`);
            this.buf = kept(buf, at, buf.length, this.shared);
            this.searched = this.buf.length;
            return;
          }
          const head = parseResponseHead(buf, at, end);
          at = end;
          this.searched = 0;
          if (head.status < 200) {
            if (head.status === 101) throw new HeadError(502, 'the upstream switched protocols (upgrades are not proxied)');
            continue; // 100 Continue, 103 Early Hints: the final response follows
          }
          at += this.onResponseHead(head, buf, at);
        } else if (this.state === In.Body) {
          if (this.untilClose) {
            this.onBody(at === 0 ? buf : buf.subarray(at));
            return;
          }
          at += this.decoder!.feed(buf, at, buf.length);
          if (this.decoder!.done) this.complete();
        } else {
          // Bytes after the response: the connection cannot be trusted for another request.
          this.reusable = false;
          this.socket?.destroy();
          return;
        }
      }
    } catch (err) {
      this.protocolError(err instanceof Error ? err.message : String(err));
    }
  }

  /** The final response head; returns how many bytes after it (at `at` in `buf`) it took as its whole body. */
  private onResponseHead(head: ResponseHead, buf: Buffer, at: number): number {
    const framing = responseFraming(head, this.method);
    this.reusable = keepsAlive(head.minor, head.headers) && framing.kind !== 'close';
    const ka = head.headers['keep-alive'];
    if (this.reusable && ka !== undefined && this.socket) {
      const ms = this.pool.announcedKeepAliveMs(ka);
      if (ms !== undefined) {
        if (ms <= KEEP_ALIVE_MARGIN_MS) this.reusable = false;
        else this.socket[KEEP_UNTIL] = Date.now() + ms - KEEP_ALIVE_MARGIN_MS;
      }
    }
    if (framing.kind === 'none' || (framing.kind === 'length' && buf.length - at >= framing.length)) {
      // The whole response is here: no body stream, no decoder.
      const n = framing.kind === 'length' ? framing.length : 0;
      this.state = In.Done;
      if (!this.settled && !this.aborted) {
        this.settled = true;
        this.listener.onHead(new WholeResponse(head.status, head.headers, n === 0 ? EMPTY : kept(buf, at, at + n, this.shared)));
      }
      this.complete();
      return n;
    }
    const body = new H1ResponseBody(this);
    this.body = body;
    if (framing.kind === 'close') this.untilClose = true;
    else if (framing.kind === 'chunked') this.decoder = new ChunkedDecoder(this.onBody);
    else if (framing.kind === 'length') this.decoder = new LengthDecoder(framing.length, this.onBody);
    this.state = In.Body;
    if (!this.settled && !this.aborted) {
      this.settled = true;
      this.listener.onHead(new StreamedResponse(head.status, head.headers, body, this));
    }
    return 0;
  }

  private readonly onBody = (chunk: Buffer): void => {
    if (!this.body!.push(this.shared ? Buffer.from(chunk) : chunk)) this.socket?.pause();
  };

  onComplete(done: (t: Headers) => void): void {
    if (this.state === In.Done) return done(this.trailers);
    this.whenComplete = done;
  }

  private complete(): void {
    this.state = In.Done;
    if (this.decoder instanceof ChunkedDecoder) this.trailers = this.decoder.trailers;
    this.decoder = undefined;
    this.body?.push(null);
    const w = this.whenComplete;
    this.whenComplete = undefined;
    if (w) w(this.trailers);
    this.finish();
  }

  /** Both messages are complete: the connection goes back to the pool (or closes). */
  private finish(): void {
    const s = this.socket;
    if (!s || s[CALL] !== this) return;
    if (!this.requestEnded) {
      // The server answered before the request body ended: this connection cannot carry another.
      if (!this.untilClose) this.pool.release(s, false);
      return;
    }
    this.socket = undefined;
    this.pool.release(s, this.reusable && !this.aborted && !this.untilClose);
  }

  private protocolError(message: string): void {
    this.reusable = false;
    if (!this.settled) this.fail('reset', `upstream protocol error: ${message}`);
    else this.body?.destroy(new Error(`upstream protocol error: ${message}`));
    this.socket?.destroy();
  }

  /** The response body's reader wants more. */
  readMore(): void {
    if (this.socket && this.socket[CALL] === this) this.socket.resume();
  }

  /** The response body was abandoned (client gone, timeout): a connection mid-response cannot be reused. */
  bodyDestroyed(): void {
    if (this.state !== In.Done) this.socket?.destroy();
  }

  /** This call's connection closed. */
  socketClosed(s: PooledSocket): void {
    this.socket = undefined;
    if (this.state === In.Body && this.untilClose) {
      this.buf = undefined;
      return this.complete();
    }
    if (!this.settled && !this.aborted && !this.answered && this.replay !== undefined && s[REUSED] && !this.resent) {
      // A keep-alive connection the server closed as the request went out: once more, on a new one.
      this.resent = true;
      this.queued = [Buffer.from(this.replay, 'latin1')];
      this.queuedBytes = this.replay.length;
      this.searched = 0;
      return this.pool.resend(this);
    }
    if (!this.settled) {
      const err = s[FAILURE];
      const kind: H1FailureKind = !s[CONNECTED] && err?.code !== undefined && CONNECT_FAILURES.has(err.code) ? 'connect-failure' : 'reset';
      const why = err ? err.message : 'socket hang up';
      return this.fail(kind, kind === 'reset' ? `upstream reset: ${why}` : `upstream connect error: ${why}`);
    }
    if (this.state !== In.Done) this.body?.destroy(new Error('upstream closed the connection before the response body ended'));
  }
}

function emitDrain(c: H1Call): void {
  c.emit('drain');
}

const CRLF = Buffer.from('\r\n', 'latin1');
const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');

const EMPTY = Buffer.alloc(0);
const NO_TRAILERS: Headers = Object.freeze({}) as Headers;

/** A response whose body is still on its way: read from `body`, trailers once it ended. */
class StreamedResponse implements H1ResponseHead {
  constructor(
    readonly status: number,
    readonly headers: Headers,
    readonly body: Readable,
    private readonly call: H1Call,
  ) {}

  onComplete(done: (trailers: Headers) => void): void {
    this.call.onComplete(done);
  }
}

/** A response that arrived whole with its head (see H1ResponseHead.whole). */
class WholeResponse implements H1ResponseHead {
  private stream: Readable | undefined;
  constructor(
    readonly status: number,
    readonly headers: Headers,
    readonly whole: Buffer,
  ) {}

  /** The body as a stream, for a reader that wants one (made on demand). */
  get body(): Readable {
    return (this.stream ??= new WholeBody(this.whole));
  }

  onComplete(done: (trailers: Headers) => void): void {
    done(NO_TRAILERS);
  }
}

/** A body that is all here already. */
class WholeBody extends Readable {
  constructor(private data: Buffer | undefined) {
    super();
  }

  override _read(): void {
    const d = this.data;
    this.data = undefined;
    if (d && d.length) this.push(d);
    this.push(null);
  }
}

/** A response body: reading it resumes the connection; destroying it closes an unfinished one. */
class H1ResponseBody extends Readable {
  constructor(private readonly call: H1Call) {
    super();
  }

  override _read(): void {
    this.call.readMore();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.call.bodyDestroyed();
    cb(err);
  }
}
