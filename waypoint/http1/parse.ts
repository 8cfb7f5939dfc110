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

// Byte classes (a head is read as latin1, one char per byte): one table look-up per character
// instead of a regular expression per name and value.
const TOKEN_CHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TOKEN_CHAR[c.charCodeAt(0)] = 1;
/** HTAB, visible ASCII, SP and obs-text: what a header value may hold. */
const VALUE_CHAR = new Uint8Array(256);
VALUE_CHAR[9] = 1;
for (let c = 0x20; c <= 0xff; c++) if (c !== 0x7f) VALUE_CHAR[c] = 1;

// As node:http: repeats of these keep the first value (host, content-length and transfer-encoding
// are refused instead).
export const FIRST_WINS: ReadonlySet<string> = new Set([
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
export const NOT_REPEATABLE: ReadonlySet<string> = new Set(['host', 'content-length', 'transfer-encoding']);

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

/**
 * Where the head that starts at `start` ends (the index just past its blank line), or -1 when it
 * has not all arrived. `searchFrom` skips bytes already searched.
 */
export function findHeadEnd(buf: Buffer, start: number, searchFrom = start): number {
  const i = buf.indexOf(CRLFCRLF, Math.max(start, searchFrom - 3));
  return i < 0 ? -1 : i + 4;
}

/**
 * Lower-case header names by the spelling a peer sent, each an internalized string: a name seen
 * before costs one map look-up, not a lower-casing and a string-table look-up when it becomes a
 * property key. Bounded: a peer inventing names gets them lower-cased each time, not cached.
 */
const lowerNames = new Map<string, string>();
const MAX_CACHED_NAMES = 1024;

function lowerName(raw: string): string {
  const cached = lowerNames.get(raw);
  if (cached !== undefined) return cached;
  const lower = raw.toLowerCase();
  if (lowerNames.size >= MAX_CACHED_NAMES) return lower;
  // A property key is internalized: the cached name is that very string.
  const name = Object.keys({ [lower]: 0 })[0]!;
  lowerNames.set(raw, name);
  return name;
}

/** Add one header (lower-case name) to `into`, combining repeats; throws HeadError(400). */
function addHeader(into: Headers, name: string, value: string): void {
  const prev = into[name];
  if (prev === undefined) {
    into[name] = name === 'set-cookie' ? [value] : value;
    return;
  }
  if (NOT_REPEATABLE.has(name)) throw new HeadError(400, `header ${name} appears more than once`);
  if (name === 'set-cookie') (prev as string[]).push(value);
  else if (!FIRST_WINS.has(name)) into[name] = `${prev}${name === 'cookie' ? '; ' : ', '}${value}`;
}

/**
 * The header names of the last head read at one place (requests, responses), as sent and
 * lower-cased: peers send the same names in the same order head after head, so a name found where
 * the last head had it is taken from here — no slice, no look-up, and (while every name so far was
 * where it was, and those were distinct) no check for a repeat.
 */
class NameSequence {
  readonly raw: string[] = [];
  readonly lower: string[] = [];
  /** lower[0, distinct) holds no name twice. */
  distinct = 0;

  /** Header `k` of a head is `raw` (lower-cased `lower`), unlike the last head's. */
  set(k: number, raw: string, lower: string): void {
    this.raw.length = k;
    this.lower.length = k;
    this.distinct = this.distinct >= k && !this.lower.includes(lower) ? k + 1 : Math.min(this.distinct, k);
    this.raw.push(raw);
    this.lower.push(lower);
  }
}

const REQUEST_NAMES = new NameSequence();
const RESPONSE_NAMES = new NameSequence();

/**
 * The header lines of `t` from `i` on, each ending in CRLF (`t` ends with the last one's), into
 * `into`, in one pass with a table look-up per character: names are tokens right before the
 * colon, values free of control characters (optional whitespace around them dropped), every line
 * ends in CRLF. Throws HeadError (400, 431).
 */
function scanHeaderLines(t: string, i: number, into: Headers, limits: HeadLimits, seq?: NameSequence): Headers {
  const n = t.length;
  let count = 0;
  /** Every name so far was where the last head had it. */
  let same = seq !== undefined;
  while (i < n) {
    if (++count > limits.maxHeaders) throw new HeadError(431, `more than ${limits.maxHeaders} header lines`);
    const ns = i;
    const k = count - 1;
    let c: number;
    let name: string;
    const known = seq?.raw[k];
    if (known !== undefined && t.charCodeAt(ns + known.length) === 58 /* : */ && t.startsWith(known, ns)) {
      // The last head's k-th name (a token, checked then) followed by the colon.
      name = seq!.lower[k]!;
      i = ns + known.length;
    } else {
      same = false;
      c = t.charCodeAt(i);
      while (TOKEN_CHAR[c] === 1) c = t.charCodeAt(++i);
      if (c !== 58 /* : */ || i === ns) {
        if (i > ns || c === 32 || c === 9) throw new HeadError(400, 'a header name that is not a token (or whitespace before the colon, or obs-fold)');
        throw new HeadError(400, c === 13 ? 'empty header line' : 'a header line without a name and colon');
      }
      const raw = t.slice(ns, i);
      name = lowerName(raw);
      seq?.set(k, raw, name);
    }
    c = t.charCodeAt(++i);
    while (c === 32 || c === 9) c = t.charCodeAt(++i);
    const vs = i;
    let ve = i;
    while (VALUE_CHAR[c] === 1) {
      if (c !== 32 && c !== 9) ve = i + 1;
      c = t.charCodeAt(++i);
    }
    if (c !== 13 || t.charCodeAt(i + 1) !== 10) throw new HeadError(400, `header ${name} has a control character (or a bare CR or LF) in its value`);
    i += 2;
    // Known to be the first of its name: no look-up for a repeat.
    if (same && k < seq!.distinct) into[name] = name === 'set-cookie' ? [t.slice(vs, ve)] : t.slice(vs, ve);
    else addHeader(into, name, t.slice(vs, ve));
  }
  return into;
}

/** Header lines `lines[from..]` (without their CRLF) into `into` (lower-case names, repeats combined); throws HeadError(400). */
export function parseHeaderLines(lines: readonly string[], from: number, into: Headers, limits: HeadLimits): Headers {
  if (lines.length - from > limits.maxHeaders) throw new HeadError(431, `more than ${limits.maxHeaders} header lines`);
  if (lines.length <= from) return into;
  for (let k = from; k < lines.length; k++) if (lines[k]!.length === 0) throw new HeadError(400, 'empty header line');
  return scanHeaderLines(`${lines.slice(from).join('\r\n')}\r\n`, 0, into, limits);
}

/** The head in buf[start, end) as latin1 text, without the blank line: every line ends in CRLF. */
function headText(buf: Buffer, start: number, end: number, limits: HeadLimits): string {
  if (end - start > limits.maxHeadBytes) throw new HeadError(431, `a head larger than ${limits.maxHeadBytes} bytes`);
  if (end - start < 4) throw new HeadError(400, 'an empty head');
  return buf.toString('latin1', start, end - 2);
}

/** The first line's end (its CR) in `t`; throws HeadError(400) on a bare CR or LF before it. */
function firstLineEnd(t: string): number {
  const cr = t.indexOf('\r\n');
  const lf = t.indexOf('\n');
  const bare = t.indexOf('\r');
  if (cr < 0 || lf !== cr + 1 || bare !== cr) throw new HeadError(400, 'a bare CR or LF in the head');
  return cr;
}

function version(v: string): number {
  if (v === 'HTTP/1.1') return 1;
  if (v === 'HTTP/1.0') return 0;
  throw new HeadError(v.startsWith('HTTP/') ? 505 : 400, `unsupported protocol version ${JSON.stringify(v.slice(0, 16))}`);
}

/**
 * The standard method `t` starts with (n characters long) as a constant: an internalized string
 * whose hash is known, so that comparing it and looking it up in sets costs no hashing per request.
 */
function knownMethod(t: string, n: number): string | undefined {
  switch (n) {
    case 3:
      return t.startsWith('GET') ? 'GET' : t.startsWith('PUT') ? 'PUT' : undefined;
    case 4:
      return t.startsWith('POST') ? 'POST' : t.startsWith('HEAD') ? 'HEAD' : undefined;
    case 5:
      return t.startsWith('PATCH') ? 'PATCH' : t.startsWith('TRACE') ? 'TRACE' : undefined;
    case 6:
      return t.startsWith('DELETE') ? 'DELETE' : undefined;
    case 7:
      return t.startsWith('OPTIONS') ? 'OPTIONS' : t.startsWith('CONNECT') ? 'CONNECT' : undefined;
    default:
      return undefined;
  }
}

/** The request head in buf[start, end) (end from findHeadEnd). Throws HeadError. */
export function parseRequestHead(buf: Buffer, start: number, end: number, limits: HeadLimits = DEFAULT_LIMITS): RequestHead {
  const t = headText(buf, start, end, limits);
  // METHOD SP target SP HTTP/1.x CRLF: method a token, target visible ASCII.
  let i = 0;
  let c = t.charCodeAt(0);
  while (TOKEN_CHAR[c] === 1) c = t.charCodeAt(++i);
  if (i === 0 || c !== 32) throw new HeadError(400, 'a request line other than METHOD SP target SP HTTP/1.x (with a token method)');
  const method = knownMethod(t, i) ?? t.slice(0, i);
  const ts = ++i;
  c = t.charCodeAt(i);
  while (c > 32 && c < 127) c = t.charCodeAt(++i);
  if (i === ts || c !== 32) throw new HeadError(400, 'a request line other than METHOD SP target SP HTTP/1.x (a target of visible ASCII)');
  const target = t.slice(ts, i);
  const vs = i + 1;
  let minor: number;
  if (
    t.charCodeAt(vs + 8) === 13 &&
    t.charCodeAt(vs + 9) === 10 &&
    t.startsWith('HTTP/1.', vs) &&
    (t.charCodeAt(vs + 7) === 49 || t.charCodeAt(vs + 7) === 48)
  ) {
    minor = t.charCodeAt(vs + 7) - 48;
    i = vs + 10;
  } else {
    const eol = firstLineEnd(t);
    const v = t.slice(vs, eol);
    if (v.includes(' ')) throw new HeadError(400, 'a request line other than METHOD SP target SP HTTP/1.x');
    minor = version(v);
    i = eol + 2;
  }
  return { method, target, minor, headers: scanHeaderLines(t, i, {}, limits, REQUEST_NAMES) };
}

/** The response head in buf[start, end). Throws HeadError. */
export function parseResponseHead(buf: Buffer, start: number, end: number, limits: HeadLimits = DEFAULT_LIMITS): ResponseHead {
  const t = headText(buf, start, end, limits);
  const eol = firstLineEnd(t);
  const sl = t.slice(0, eol);
  // HTTP/1.x SP 3DIGIT [SP reason]
  if (sl.length < 12 || sl.charCodeAt(8) !== 32 || (sl.length > 12 && sl.charCodeAt(12) !== 32)) throw new HeadError(502, 'a malformed status line');
  const minor = version(sl.slice(0, 8));
  const d0 = sl.charCodeAt(9) - 48;
  const d1 = sl.charCodeAt(10) - 48;
  const d2 = sl.charCodeAt(11) - 48;
  if (!(d0 >= 1 && d0 <= 5 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9)) throw new HeadError(502, `a malformed status code ${JSON.stringify(sl.slice(9, 12))}`);
  const reason = sl.length > 13 ? sl.slice(13) : '';
  if (!isValidValue(reason)) throw new HeadError(502, 'a control character in the reason phrase');
  return { status: d0 * 100 + d1 * 10 + d2, reason, minor, headers: scanHeaderLines(t, eol + 2, {}, limits, RESPONSE_NAMES) };
}

/** 1 to 15 decimal digits, nothing else. */
function decimal(v: string): boolean {
  const n = v.length;
  if (n === 0 || n > 15) return false;
  for (let i = 0; i < n; i++) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

function contentLength(v: HeaderValue): number {
  if (typeof v !== 'string' || !decimal(v)) throw new HeadError(400, 'a Content-Length that is not a decimal number');
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
    if (semi >= 0 && !isValidValue(text.slice(semi))) throw new HeadError(400, 'a control character in a chunk extension');
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
  const n = s.length;
  if (n === 0) return false;
  for (let i = 0; i < n; i++) if (TOKEN_CHAR[s.charCodeAt(i)] !== 1) return false;
  return true;
}

/** Whether a header value can be written as is (no CR, LF, NUL or other control character). */
export function isValidValue(s: string): boolean {
  const n = s.length;
  for (let i = 0; i < n; i++) if (VALUE_CHAR[s.charCodeAt(i)] !== 1) return false;
  return true;
}
