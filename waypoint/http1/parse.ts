// The waypoint's own HTTP/1.1 message parsing (pure; no I/O): request and response heads, and the
// body framing they imply. Strict on purpose — the downstream side faces untrusted peers, and a
// proxy that frames a message differently from the server behind it is open to request smuggling:
//   - lines end in CRLF; a bare CR or LF, a NUL or another control character is refused;
//   - header names are tokens, with no whitespace before the colon; obs-fold (a line starting with
//     whitespace) is refused;
//   - Content-Length is digits only, at most once; Transfer-Encoding in a request must be exactly
//     `chunked`; both at once are refused;
//   - at most `maxHeadBytes` bytes and `maxHeaders` lines per head (431 beyond), chunk-size lines
//     and trailers bounded the same way.
// Errors are HeadError with the status the server answers (400, 431, 501) or, upstream, a reason.

export type HeaderValue = string | string[];
export type Headers = Record<string, HeaderValue>;

export interface HeadLimits {
  /** Bytes of the head (request or status line, header lines, the blank line). */
  readonly maxHeadBytes: number;
  /** Header lines. */
  readonly maxHeaders: number;
}

export const DEFAULT_LIMITS: HeadLimits = { maxHeadBytes: 16 * 1024, maxHeaders: 100 };

export class HeadError extends Error {
  constructor(
    /** The status to answer a request with (400, 431, 501); for responses only informative. */
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'HeadError';
  }
}

export interface RequestHead {
  readonly method: string;
  /** The request-target as sent (origin-form for anything the waypoint routes). */
  readonly target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly minor: number;
  /** Lower-case names; repeated headers joined with ', ' (cookie: '; ', set-cookie: a list). */
  readonly headers: Headers;
}

export interface ResponseHead {
  readonly status: number;
  readonly reason: string;
  readonly minor: number;
  readonly headers: Headers;
}

/** How a message's body is delimited. */
export type Framing =
  | { readonly kind: 'none' }
  | { readonly kind: 'length'; readonly length: number }
  | { readonly kind: 'chunked' }
  /** Until the connection closes (responses only). */
  | { readonly kind: 'close' };

export const NO_BODY: Framing = { kind: 'none' };
const CHUNKED: Framing = { kind: 'chunked' };
const UNTIL_CLOSE: Framing = { kind: 'close' };

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Anything but HTAB, visible ASCII, SP and obs-text. */
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** A request-target: visible ASCII only. */
const BAD_TARGET = /[^\x21-\x7e]/;
const DIGITS = /^[0-9]{1,15}$/;

// As node:http: repeats of these keep the first value (host and content-length are refused instead).
const FIRST_WINS = new Set([
  'age',
  'authorization',
  'content-type',
  'etag',
  'expires',
  'from',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);
const NOT_REPEATABLE = new Set(['host', 'content-length', 'transfer-encoding']);

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

/**
 * Where the head that starts at `start` ends (the index just past its blank line), or -1 when it
 * has not all arrived. `searchFrom` skips bytes already searched.
 */
export function findHeadEnd(buf: Buffer, start: number, searchFrom = start): number {
  const i = buf.indexOf(CRLFCRLF, Math.max(start, searchFrom - 3));
  return i < 0 ? -1 : i + 4;
}

/** Header lines `lines[from..]` into `into` (lower-case names, repeats combined); throws HeadError(400). */
export function parseHeaderLines(lines: readonly string[], from: number, into: Headers, limits: HeadLimits): Headers {
  if (lines.length - from > limits.maxHeaders) throw new HeadError(431, `more than ${limits.maxHeaders} header lines`);
  for (let i = from; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HeadError(400, line.length === 0 ? 'empty header line' : 'a header line without a name and colon');
    const rawName = line.slice(0, colon);
    if (!TOKEN.test(rawName)) throw new HeadError(400, 'a header name that is not a token (or whitespace before the colon, or obs-fold)');
    const value = trimOws(line.slice(colon + 1));
    if (BAD_VALUE.test(value)) throw new HeadError(400, `header ${rawName} has a control character in its value`);
    const name = rawName.toLowerCase();
    const prev = into[name];
    if (prev === undefined) {
      into[name] = name === 'set-cookie' ? [value] : value;
      continue;
    }
    if (NOT_REPEATABLE.has(name)) throw new HeadError(400, `header ${name} appears more than once`);
    if (name === 'set-cookie') (prev as string[]).push(value);
    else if (FIRST_WINS.has(name)) continue;
    else into[name] = `${prev}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
  return into;
}

function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 32 || s.charCodeAt(a) === 9)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 32 || s.charCodeAt(b - 1) === 9)) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/** The head's lines (without the final blank line); refuses a bare CR or LF inside one. */
function headLines(buf: Buffer, start: number, end: number, limits: HeadLimits): string[] {
  if (end - start > limits.maxHeadBytes) throw new HeadError(431, `a head larger than ${limits.maxHeadBytes} bytes`);
  const text = buf.toString('latin1', start, end - 4);
  const lines = text.split('\r\n');
  for (const l of lines) if (l.includes('\n') || l.includes('\r')) throw new HeadError(400, 'a bare CR or LF in the head');
  return lines;
}

function version(v: string): number {
  if (v === 'HTTP/1.1') return 1;
  if (v === 'HTTP/1.0') return 0;
  throw new HeadError(v.startsWith('HTTP/') ? 505 : 400, `unsupported protocol version ${JSON.stringify(v.slice(0, 16))}`);
}

/** The request head in buf[start, end) (end from findHeadEnd). Throws HeadError. */
export function parseRequestHead(buf: Buffer, start: number, end: number, limits: HeadLimits = DEFAULT_LIMITS): RequestHead {
  const lines = headLines(buf, start, end, limits);
  const rl = lines[0]!;
  const sp1 = rl.indexOf(' ');
  const sp2 = sp1 < 0 ? -1 : rl.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || rl.indexOf(' ', sp2 + 1) >= 0) throw new HeadError(400, 'a request line other than METHOD SP target SP HTTP/1.x');
  const method = rl.slice(0, sp1);
  const target = rl.slice(sp1 + 1, sp2);
  if (!TOKEN.test(method)) throw new HeadError(400, 'a method that is not a token');
  if (target.length === 0 || BAD_TARGET.test(target)) throw new HeadError(400, 'a request-target with whitespace or a control character');
  const minor = version(rl.slice(sp2 + 1));
  return { method, target, minor, headers: parseHeaderLines(lines, 1, {}, limits) };
}

/** The response head in buf[start, end). Throws HeadError. */
export function parseResponseHead(buf: Buffer, start: number, end: number, limits: HeadLimits = DEFAULT_LIMITS): ResponseHead {
  const lines = headLines(buf, start, end, limits);
  const sl = lines[0]!;
  // HTTP/1.x SP 3DIGIT [SP reason]
  if (sl.length < 12 || sl.charCodeAt(8) !== 32 || (sl.length > 12 && sl.charCodeAt(12) !== 32)) throw new HeadError(502, 'a malformed status line');
  const minor = version(sl.slice(0, 8));
  const code = sl.slice(9, 12);
  if (!/^[1-5][0-9][0-9]$/.test(code)) throw new HeadError(502, `a malformed status code ${JSON.stringify(code)}`);
  const reason = sl.slice(13);
  if (BAD_VALUE.test(reason)) throw new HeadError(502, 'a control character in the reason phrase');
  return { status: Number(code), reason, minor, headers: parseHeaderLines(lines, 1, {}, limits) };
}

function contentLength(v: HeaderValue): number {
  if (typeof v !== 'string' || !DIGITS.test(v)) throw new HeadError(400, 'a Content-Length that is not a decimal number');
  return Number(v);
}

/** A request's body framing (RFC 9112 6.3). Throws HeadError (400, 501). */
export function requestFraming(h: RequestHead): Framing {
  const te = h.headers['transfer-encoding'];
  const cl = h.headers['content-length'];
  if (te !== undefined) {
    if (cl !== undefined) throw new HeadError(400, 'both Transfer-Encoding and Content-Length');
    if (h.minor === 0) throw new HeadError(400, 'Transfer-Encoding in an HTTP/1.0 request');
    if ((te as string).toLowerCase() !== 'chunked') throw new HeadError(501, `Transfer-Encoding ${JSON.stringify(te)} (only chunked is accepted)`);
    return CHUNKED;
  }
  if (cl !== undefined) {
    const n = contentLength(cl);
    return n === 0 ? NO_BODY : { kind: 'length', length: n };
  }
  return NO_BODY;
}

/** A response's body framing, given the request's method (RFC 9112 6.3). Throws HeadError. */
export function responseFraming(h: ResponseHead, requestMethod: string): Framing {
  if (requestMethod === 'HEAD' || h.status < 200 || h.status === 204 || h.status === 304) return NO_BODY;
  const te = h.headers['transfer-encoding'];
  const cl = h.headers['content-length'];
  if (te !== undefined) {
    if (cl !== undefined) throw new HeadError(502, 'both Transfer-Encoding and Content-Length');
    const codings = (te as string).toLowerCase().split(',');
    return codings[codings.length - 1]!.trim() === 'chunked' ? CHUNKED : UNTIL_CLOSE;
  }
  if (cl !== undefined) {
    const n = contentLength(cl);
    return n === 0 ? NO_BODY : { kind: 'length', length: n };
  }
  return UNTIL_CLOSE;
}

/** Whether the connection stays open after this message (HTTP/1.1 unless `close`; 1.0 only with `keep-alive`). */
export function keepsAlive(minor: number, headers: Headers): boolean {
  const c = headers.connection;
  if (c === undefined) return minor === 1;
  const v = (c as string).toLowerCase();
  if (v.includes('close')) return false;
  return minor === 1 || v.includes('keep-alive');
}

enum Chunk {
  Size = 0,
  Data = 1,
  DataEnd = 2,
  Trailers = 3,
  Done = 4,
}

const MAX_CHUNK_LINE = 1024;

/**
 * A chunked body, decoded incrementally: `feed` takes the bytes as they arrive, hands each piece
 * of data to `onData` (slices of the input, no copies) and returns how many bytes it used — fewer
 * than given once the body (with its trailers) is complete. Throws HeadError on a malformed body.
 */
export class ChunkedDecoder {
  private state = Chunk.Size;
  private remaining = 0;
  private line = '';
  private trailerBytes = 0;
  private readonly trailerLines: string[] = [];
  trailers: Headers = {};

  constructor(
    private readonly onData: (chunk: Buffer) => void,
    private readonly limits: HeadLimits = DEFAULT_LIMITS,
  ) {}

  get done(): boolean {
    return this.state === Chunk.Done;
  }

  feed(buf: Buffer, start: number, end: number): number {
    let i = start;
    while (i < end && this.state !== Chunk.Done) {
      switch (this.state) {
        case Chunk.Data: {
          const n = Math.min(this.remaining, end - i);
          this.remaining -= n;
          const piece = buf.subarray(i, i + n);
          i += n;
          if (this.remaining === 0) this.state = Chunk.DataEnd;
          this.onData(piece);
          break;
        }
        case Chunk.DataEnd: {
          // CRLF after the data, possibly split across reads (kept in `line`).
          this.line += String.fromCharCode(buf[i++]!);
          if (this.line.length === 2) {
            if (this.line !== '\r\n') throw new HeadError(400, 'chunk data not followed by CRLF');
            this.line = '';
            this.state = Chunk.Size;
          }
          break;
        }
        default: {
          const lf = buf.indexOf(10, i);
          const stop = lf < 0 || lf >= end ? end : lf + 1;
          this.line += buf.toString('latin1', i, stop);
          i = stop;
          if (this.state === Chunk.Size && this.line.length > MAX_CHUNK_LINE) throw new HeadError(400, 'a chunk-size line too long');
          if (this.state === Chunk.Trailers && this.trailerBytes + this.line.length > this.limits.maxHeadBytes) throw new HeadError(431, 'trailers too large');
          if (stop === lf + 1) this.endLine();
        }
      }
    }
    return i - start;
  }

  private endLine(): void {
    const l = this.line;
    this.line = '';
    if (l.length < 2 || l.charCodeAt(l.length - 2) !== 13) throw new HeadError(400, 'a chunk line not ending in CRLF');
    const text = l.slice(0, -2);
    if (text.includes('\r')) throw new HeadError(400, 'a bare CR in a chunk line');
    if (this.state === Chunk.Trailers) {
      this.trailerBytes += l.length;
      if (text.length > 0) {
        this.trailerLines.push(text);
        return;
      }
      this.trailers = parseHeaderLines(this.trailerLines, 0, {}, this.limits);
      this.state = Chunk.Done;
      return;
    }
    const semi = text.indexOf(';');
    const hex = semi < 0 ? text : text.slice(0, semi);
    if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) throw new HeadError(400, 'a chunk size that is not 1-12 hex digits');
    if (semi >= 0 && BAD_VALUE.test(text.slice(semi))) throw new HeadError(400, 'a control character in a chunk extension');
    const n = Number.parseInt(hex, 16);
    if (n === 0) this.state = Chunk.Trailers;
    else {
      this.remaining = n;
      this.state = Chunk.Data;
    }
  }
}

/** A Content-Length body: hands data to `onData` up to the length; `feed` returns the bytes used. */
export class LengthDecoder {
  constructor(
    private remaining: number,
    private readonly onData: (chunk: Buffer) => void,
  ) {}

  get done(): boolean {
    return this.remaining === 0;
  }

  feed(buf: Buffer, start: number, end: number): number {
    const n = Math.min(this.remaining, end - start);
    if (n === 0) return 0;
    this.remaining -= n;
    this.onData(buf.subarray(start, start + n));
    return n;
  }
}

export type BodyDecoder = ChunkedDecoder | LengthDecoder;

/** A validated header name (token) for the head being written. */
export function isToken(s: string): boolean {
  return TOKEN.test(s);
}

/** Whether a header value can be written as is (no CR, LF, NUL or other control character). */
export function isValidValue(s: string): boolean {
  return !BAD_VALUE.test(s);
}
