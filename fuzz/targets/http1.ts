// The waypoint's HTTP/1.1 parser (waypoint/http1/parse.ts), which faces untrusted peers on every
// plaintext listener and inside HBONE: a request stream (a head, then a body by its framing) of
// arbitrary bytes, read the way the downstream server reads it, once whole and once cut into
// arbitrary slices. Properties: nothing throws but HeadError (whose status is 400, 417, 431, 501 or
// 505); what is accepted is well-formed (a token method, a target of visible ASCII, lower-case
// token header names, values without control characters, no Content-Length with
// Transfer-Encoding, a safe-integer length); the body and the bytes consumed do not depend on how
// the stream was sliced (the same input never frames two ways — the request-smuggling property);
// a response head gets the same checks.
import fc from 'fast-check';
import {
  ChunkedDecoder,
  findHeadEnd,
  HeadError,
  LengthDecoder,
  parseRequestHead,
  parseResponseHead,
  requestFraming,
  responseFraming,
  type BodyDecoder,
  type HeadLimits,
} from '../../waypoint/http1/parse';
import { target } from '../target';
import { referenceRequest, referenceResponse, type ReferenceHead } from './http1-reference';

const LIMITS: HeadLimits = { maxHeadBytes: 2048, maxHeaders: 24 };
const STATUSES = new Set([400, 417, 431, 501, 505]);

const PIECES = [
  'GET',
  'POST',
  'HEAD',
  'G ET',
  ' ',
  '/',
  '/a?b=c',
  'http://x/',
  'HTTP/1.1',
  'HTTP/1.0',
  'HTTP/2.0',
  'HTTP/1.1 200 OK',
  '\r\n',
  '\r',
  '\n',
  ':',
  ': ',
  'host',
  'Host: a',
  'content-length',
  'Content-Length: 5',
  'content-length: 0',
  'content-length: -1',
  'content-length: 99999999999999999999',
  'transfer-encoding',
  'Transfer-Encoding: chunked',
  'transfer-encoding: gzip, chunked',
  'chunked',
  'connection: close',
  'expect: 100-continue',
  '0',
  '5',
  'a',
  'ffffffffffff',
  ';ext=1',
  'hello',
  ',',
  '\t',
  '\x00',
  '\x7f',
  '\xff',
];
const noise = fc.oneof(fc.constantFrom(...PIECES), fc.string({ unit: 'binary-ascii', maxLength: 4 }));
const soup = fc.array(noise, { maxLength: 48 }).map((p) => p.join(''));
/** A part that is usually well-formed, sometimes noise (so most heads get past the request line). */
const part = (good: readonly string[]): fc.Arbitrary<string> =>
  fc.oneof({ weight: 10, arbitrary: fc.constantFrom(...good) }, { weight: 1, arbitrary: fc.array(noise, { maxLength: 3 }).map((p) => p.join('')) });
const headerLine = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.constantFrom(
      'host: a',
      'Host: b.example:80',
      'content-length: 5',
      'Content-Length: 0',
      'content-length: 12',
      'transfer-encoding: chunked',
      'Transfer-Encoding: Chunked',
      'connection: close',
      'connection: keep-alive',
      'expect: 100-continue',
      'x-a: 1',
      'cookie: a=1',
      'set-cookie: b=2',
      'te: trailers',
    ),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        part(['host', 'content-length', 'transfer-encoding', 'connection', 'x-a', 'cookie']),
        part([': ', ':', ' : ', ':\t']),
        part(['a', '5', '0', '-1', '1e3', ' 7', '99999999999999999999', 'chunked', 'gzip, chunked', 'chunked, gzip', 'close', 'x; y']),
      )
      .map(([n, c, v]) => `${n}${c}${v}`),
  },
);
const structuredHead = fc
  .tuple(
    part(['GET', 'POST', 'HEAD', 'PUT', 'get']),
    part([' ']),
    part(['/', '/a?b=c', '/x%20y', '*', 'http://x/']),
    part([' ']),
    fc.oneof({ weight: 8, arbitrary: fc.constantFrom('HTTP/1.1', 'HTTP/1.0') }, { weight: 1, arbitrary: part(['HTTP/2.0', 'HTTP/1.10', 'http/1.1']) }),
    fc.array(headerLine, { maxLength: 4 }),
  )
  .map(([m, s1, t, s2, v, lines]) => [`${m}${s1}${t}${s2}${v}`, ...lines].join('\r\n'));
const chunk = fc
  .tuple(
    part(['1', '5', 'a', 'A', '0', '00', 'fffffffffffff']),
    part(['', ';ext=1', '; e', ';\x01']),
    part(['\r\n', '\n']),
    fc.string({ maxLength: 12 }),
    part(['\r\n', '\n', '']),
  )
  .map((c) => c.join(''));
const structuredBody = fc.tuple(fc.array(chunk, { maxLength: 4 }), part(['0\r\n\r\n', '0\r\nx-t: 1\r\n\r\n', '0\r\n'])).map(([cs, last]) => cs.join('') + last);

interface Input {
  readonly head: string;
  readonly body: string;
  readonly cuts: number[];
}

/** A refusal other than HeadError, or a HeadError with a status the server does not answer with, is a defect. */
function refusal(err: unknown, statuses: ReadonlySet<number> | undefined): void {
  if (!(err instanceof HeadError)) throw err;
  if (statuses && !STATUSES.has(err.status)) throw new Error(`HeadError with status ${err.status}: ${err.message}`);
}

// The oracles are regular expressions of their own, not the parser's character tables.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

function checkHeaders(headers: Record<string, string | string[]>): void {
  for (const k in headers) {
    if (!TOKEN.test(k) || k !== k.toLowerCase()) throw new Error(`accepted header name ${JSON.stringify(k)}`);
    const v = headers[k]!;
    for (const one of typeof v === 'string' ? [v] : v) if (BAD_VALUE.test(one)) throw new Error(`accepted value ${JSON.stringify(one)} of ${k}`);
  }
}

/** The parser and the reference reading (http1-reference.ts) agree: both refuse, or both accept the same head. */
function agrees(kind: string, got: ReferenceHead | undefined, want: ReferenceHead | undefined): void {
  const a = JSON.stringify(got);
  const b = JSON.stringify(want);
  if (a !== b) throw new Error(`${kind} head: the parser gives ${a ?? 'a refusal'}, the reference ${b ?? 'a refusal'}`);
}

interface Decoded {
  readonly body: Buffer;
  readonly used: number;
  readonly done: boolean;
  readonly error: number | undefined;
}

function decode(make: (onData: (c: Buffer) => void) => BodyDecoder, parts: readonly Buffer[]): Decoded {
  const got: Buffer[] = [];
  const d = make((c) => got.push(Buffer.from(c)));
  let used = 0;
  try {
    for (const p of parts) {
      const n = d.feed(p, 0, p.length);
      if (n > p.length || n < 0) throw new Error(`feed used ${n} of ${p.length} bytes`);
      used += n;
      if (d.done) break;
    }
  } catch (err) {
    refusal(err, STATUSES);
    return { body: Buffer.concat(got), used, done: false, error: (err as HeadError).status };
  }
  return { body: Buffer.concat(got), used, done: d.done, error: undefined };
}

function slices(b: Buffer, cuts: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (let i = 0; at < b.length; i++) {
    const n = cuts[i % cuts.length]!;
    out.push(b.subarray(at, at + n));
    at += n;
  }
  return out;
}

export const http1Target = target({
  name: 'http1-parse',
  what: 'the waypoint HTTP/1.1 request/response head parser, framing and body decoders on arbitrary bytes, whole and sliced',
  arbitrary: fc.record({
    head: fc.oneof({ weight: 4, arbitrary: structuredHead }, { weight: 1, arbitrary: soup }),
    body: fc.oneof({ weight: 3, arbitrary: structuredBody }, { weight: 1, arbitrary: soup }),
    cuts: fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 6 }),
  }),
  unitRuns: 3_000,
  check: (i: Input) => {
    const head = Buffer.from(`${i.head}\r\n\r\n`, 'latin1');
    const body = Buffer.from(i.body, 'latin1');
    const end = findHeadEnd(head, 0);
    if (end < 0 || end > head.length) throw new Error(`findHeadEnd gave ${end} for a head ending in CRLFCRLF`);
    // The server searches again from where the last read ended: the same end whatever the slicing.
    let searched = 0;
    let found = -1;
    for (const p of slices(head, i.cuts)) {
      const upTo = searched + p.length;
      found = findHeadEnd(head.subarray(0, upTo), 0, searched);
      if (found >= 0) break;
      searched = upTo;
    }
    if (found !== end) throw new Error(`head end ${found} when sliced, ${end} whole`);

    const text = head.toString('latin1', 0, end);
    let req: ReferenceHead | undefined;
    try {
      const p = parseRequestHead(head, 0, end, LIMITS);
      req = { method: p.method, target: p.target, minor: p.minor, headers: p.headers };
    } catch (err) {
      refusal(err, STATUSES);
    }
    agrees('request', req, referenceRequest(text, LIMITS.maxHeadBytes, LIMITS.maxHeaders));
    let res: ReferenceHead | undefined;
    try {
      const p = parseResponseHead(head, 0, end, LIMITS);
      res = { status: p.status, minor: p.minor, headers: p.headers };
    } catch (err) {
      refusal(err, undefined);
    }
    agrees('response', res, referenceResponse(text, LIMITS.maxHeadBytes, LIMITS.maxHeaders));

    try {
      const h = parseRequestHead(head, 0, end, LIMITS);
      if (!TOKEN.test(h.method)) throw new Error(`accepted method ${JSON.stringify(h.method)}`);
      if (h.target.length === 0 || /[^\x21-\x7e]/.test(h.target)) throw new Error(`accepted target ${JSON.stringify(h.target)}`);
      if (h.minor !== 0 && h.minor !== 1) throw new Error(`accepted HTTP/1.${h.minor}`);
      checkHeaders(h.headers);
      const f = requestFraming(h);
      if (f.kind === 'close') throw new Error('a request framed until close');
      if (f.kind !== 'none' && h.headers['content-length'] !== undefined && h.headers['transfer-encoding'] !== undefined)
        throw new Error('both Content-Length and Transfer-Encoding accepted');
      if (f.kind === 'length' && !(Number.isSafeInteger(f.length) && f.length > 0)) throw new Error(`length ${f.length}`);
      if (f.kind === 'length' || f.kind === 'chunked') {
        const make = (onData: (c: Buffer) => void): BodyDecoder =>
          f.kind === 'chunked' ? new ChunkedDecoder(onData, LIMITS) : new LengthDecoder(f.length, onData);
        const whole = decode(make, [body]);
        const sliced = decode(make, slices(body, i.cuts));
        if (whole.done !== sliced.done || whole.error !== sliced.error)
          throw new Error(`whole: done ${whole.done} error ${whole.error}; sliced: done ${sliced.done} error ${sliced.error}`);
        if (whole.done && (whole.used !== sliced.used || !whole.body.equals(sliced.body)))
          throw new Error(`the body frames differently when sliced (${whole.used} vs ${sliced.used} bytes used)`);
        if (f.kind === 'length' && whole.body.length > f.length) throw new Error('more body than Content-Length');
      }
    } catch (err) {
      refusal(err, STATUSES);
    }

    try {
      const r = parseResponseHead(head, 0, end, LIMITS);
      if (!(r.status >= 100 && r.status <= 599)) throw new Error(`accepted status ${r.status}`);
      checkHeaders(r.headers);
      responseFraming(r, 'GET');
    } catch (err) {
      refusal(err, undefined);
    }
  },
});
