// Downstream HTTP/2 (h2c, and HTTP/2 inside HBONE) on node:http2's core stream API: one small
// request/response pair per stream around the ServerHttp2Stream, instead of the compatibility
// API's Http2ServerRequest (a Readable) and Http2ServerResponse with their listeners per stream,
// which were ~12 % of an h2c request's CPU and much of its garbage. What it keeps of the
// compatibility API's behaviour: CONNECT is answered 405 (the waypoint terminates HBONE's CONNECT
// on 15008, not here), `expect: 100-continue` gets a 100, any other expectation 417; header names
// and values are checked when the head is set (an invalid one throws there, as writeHead does);
// a bodiless response goes out as one HEADERS frame with END_STREAM, one with a body with
// waitForTrailers (its trailers, or an empty DATA frame with END_STREAM, follow the body). Not
// END_STREAM on the body's last DATA frame: the stream would close (and node destroy it) before
// the write's callback, and node's Writable then makes an ERR_STREAM_DESTROYED error, stack
// trace and all, for every such response (~9 % of an h2c request's CPU when tried).
import { constants, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { isToken, isValidValue } from '../http1/parse';
import { StreamBackedRequest } from '../http1/stream-backed';
import type { SessionIdle } from './session-idle';

type Listener = () => void;
/** The response a stream carries (for its 'wantTrailers' and 'close' listeners, shared by all streams). */
const RESPONSE = Symbol('nodemesh.h2.response');
type ResponseStream = ServerHttp2Stream & { [RESPONSE]?: H2Response };

/** node:http2 asks for the trailers of a response sent with waitForTrailers: the response's, or none (an empty DATA frame with END_STREAM). */
function onWantTrailers(this: ResponseStream): void {
  this.sendTrailers(this[RESPONSE]?.trailersToSend ?? NO_TRAILERS);
}

/** The stream closed (reset or done): its response hears it. */
function onResponseStreamClose(this: ResponseStream): void {
  this[RESPONSE]?.streamClosed();
}
const NO_TRAILERS: Record<string, string> = Object.freeze({}) as Record<string, string>;
/** Headers an HTTP/2 response may not carry (node:http2 refuses them, RFC 9113 8.2.2). */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings']);

/** A downstream HTTP/2 request: its head, and its body read from the stream itself. */
export class H2Request extends StreamBackedRequest {
  readonly httpVersionMajor = 2;
  readonly httpVersionMinor = 0;
  readonly method: string;
  readonly url: string;
  constructor(
    readonly stream: ServerHttp2Stream,
    readonly headers: IncomingHttpHeaders,
  ) {
    super();
    this.method = headers[':method'] ?? '';
    this.url = headers[':path'] ?? '';
  }

  get readableEnded(): boolean {
    return this.stream.readableEnded;
  }
}

/** A downstream HTTP/2 response: the subset of node:http2's Http2ServerResponse the waypoint uses. */
export class H2Response {
  statusCode = 200;
  headersSent = false;
  writableEnded = false;
  private head: OutgoingHttpHeaders | undefined;
  private extra: Record<string, string | string[]> | undefined;
  /** The trailers to send after the body (undefined: none). */
  trailersToSend: Record<string, string> | undefined;
  private closeListeners: Listener[] | undefined;

  constructor(
    readonly stream: ServerHttp2Stream,
    /** The session's idle timer (http2/session-idle.ts), told when this stream closes. */
    private readonly idle?: SessionIdle,
  ) {
    // Module-level listeners finding the response on the stream: no closure per response.
    (stream as ResponseStream)[RESPONSE] = this;
    stream.on('close', onResponseStreamClose);
  }

  /** The stream is gone or going (reset, or closed). */
  get destroyed(): boolean {
    return this.stream.destroyed || this.stream.closed;
  }

  /** The stream closed (called once, by its 'close'). */
  streamClosed(): void {
    this.idle?.closed();
    const ls = this.closeListeners;
    if (!ls) return;
    this.closeListeners = undefined;
    for (const l of ls) l.call(this);
  }

  /** 'close' (the stream closed) is this response's own, called with `this` = the response; the others are the stream's. */
  on(event: 'close' | 'finish' | 'drain' | 'error', fn: Listener): this {
    if (event === 'close') (this.closeListeners ??= []).push(fn);
    else this.stream.on(event, fn);
    return this;
  }

  once(event: 'close' | 'finish' | 'drain' | 'error', fn: Listener): this {
    if (event === 'close') (this.closeListeners ??= []).push(fn);
    else this.stream.once(event, fn);
    return this;
  }

  setHeader(name: string, value: string | string[]): this {
    if (this.headersSent) throw new Error('cannot set a header after the response head was sent');
    const k = name.toLowerCase();
    check(k, value);
    (this.extra ??= {})[k] = value;
    return this;
  }

  /** Status and headers (checked here); they go out with the first body bytes or the end. */
  writeHead(status: number, headers?: Record<string, string | string[] | undefined>): this {
    if (this.headersSent) throw new Error('the response head was already sent');
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError(`invalid status code ${status}`);
    const h: OutgoingHttpHeaders = { ...this.extra };
    if (headers)
      for (const name in headers) {
        const v = headers[name];
        if (v === undefined) continue;
        const k = name.toLowerCase();
        check(k, v);
        h[k] = v;
      }
    h[':status'] = status;
    this.statusCode = status;
    this.head = h;
    this.headersSent = true;
    return this;
  }

  /** One HEADERS frame with END_STREAM (a gRPC trailers-only response). */
  trailersOnly(headers: Record<string, string | string[] | undefined>, status = 200): void {
    this.writeHead(status, headers);
    this.writableEnded = true;
    this.send(true);
  }

  write(chunk: Buffer): boolean {
    if (this.writableEnded || this.destroyed) return false;
    if (!this.headersSent) this.writeHead(this.statusCode);
    // The body streams: trailers may still come.
    if (this.head !== undefined && !this.send(false)) return false;
    return this.stream.write(chunk);
  }

  addTrailers(t: Record<string, string>): void {
    this.trailersToSend = t;
  }

  end(chunk?: string | Buffer): this {
    if (this.writableEnded || this.destroyed) return this;
    this.writableEnded = true;
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const empty = data === undefined || data.length === 0;
    if (!this.headersSent) this.writeHead(this.statusCode);
    if (this.head !== undefined) {
      // The head has not gone out: the whole response is at hand.
      const bodiless = empty && this.trailersToSend === undefined;
      if (!this.send(bodiless) || bodiless) return this;
    }
    if (empty) this.stream.end();
    else this.stream.end(data);
    return this;
  }

  /** Send the head (`endStream`: the whole response); false when the stream refused it (then it is reset). */
  private send(endStream: boolean): boolean {
    const h = this.head!;
    this.head = undefined;
    const st = this.stream;
    try {
      if (endStream) st.respond(h, { endStream: true });
      else {
        st.respond(h, { waitForTrailers: true });
        st.on('wantTrailers', onWantTrailers);
      }
      return true;
    } catch {
      st.close(constants.NGHTTP2_INTERNAL_ERROR);
      return false;
    }
  }

  /** Abandon the response: the stream is reset (INTERNAL_ERROR: the client sees a cut response, not a complete one). */
  destroy(): void {
    if (this.stream.closed) return;
    // node reports its own reset as the stream's 'error': expected here.
    this.stream.on('error', ignore);
    this.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
  }
}

function ignore(): void {}

function check(name: string, v: string | string[] | number): void {
  if (!isToken(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
  if (CONNECTION_SPECIFIC.has(name)) throw new TypeError(`header ${name} is not allowed in an HTTP/2 response`);
  if (typeof v === 'string') {
    if (!isValidValue(v)) throw new TypeError(`invalid character in the value of header ${name}`);
  } else if (Array.isArray(v)) {
    for (const one of v) if (!isValidValue(one)) throw new TypeError(`invalid character in the value of header ${name}`);
  }
}

/**
 * What the compatibility API did before a request reached its handler: CONNECT is 405, `expect`
 * other than 100-continue is 417 (both answered here: false), 100-continue gets its 100.
 */
export function admitStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): boolean {
  if (headers[':method'] === 'CONNECT') {
    stream.respond({ ':status': 405 }, { endStream: true });
    return false;
  }
  const expect = headers.expect;
  if (expect !== undefined) {
    if (expect.toLowerCase() !== '100-continue') {
      stream.respond({ ':status': 417 }, { endStream: true });
      return false;
    }
    stream.additionalHeaders({ ':status': 100 });
  }
  return true;
}
