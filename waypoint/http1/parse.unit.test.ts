import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ChunkedDecoder,
  findHeadEnd,
  HeadError,
  LengthDecoder,
  parseRequestHead,
  parseResponseHead,
  requestFraming,
  responseFraming,
  type HeadLimits,
  type RequestHead,
} from './parse';
import { headerLines } from './serialize';

const LIMITS: HeadLimits = { maxHeadBytes: 16 * 1024, maxHeaders: 100 };

function request(text: string): RequestHead {
  const b = Buffer.from(text, 'latin1');
  const end = findHeadEnd(b, 0);
  if (end < 0) throw new Error('incomplete head');
  return parseRequestHead(b, 0, end, LIMITS);
}

function refusal(text: string): number {
  try {
    const h = request(text);
    requestFraming(h);
  } catch (err) {
    if (err instanceof HeadError) return err.status;
    throw err;
  }
  return 0;
}

function decodeChunked(parts: Buffer[]): { body: Buffer; trailers: Record<string, unknown>; used: number } {
  const got: Buffer[] = [];
  const d = new ChunkedDecoder((c) => got.push(Buffer.from(c)));
  let used = 0;
  for (const p of parts) used += d.feed(p, 0, p.length);
  if (!d.done) throw new Error('not done');
  return { body: Buffer.concat(got), trailers: d.trailers, used };
}

describe('HTTP/1.1 request heads', () => {
  it('reads names in any spelling, also past the bound of remembered spellings', () => {
    // The parser remembers the lower-case form of up to 1,024 spellings; names beyond that are
    // lower-cased each time, with the same result.
    for (let round = 0; round < 12; round++) {
      const names = Array.from({ length: 99 }, (_, i) => `X-Name-${round}-${i}`);
      const h = request(`GET / HTTP/1.1\r\nHOST: a\r\n${names.map((n, i) => `${n}: v${i}\r\n`).join('')}\r\n`);
      expect(Object.keys(h.headers)).toEqual(['host', ...names.map((n) => n.toLowerCase())]);
      expect(h.headers[`x-name-${round}-98`]).toBe('v98');
    }
  });

  it('reads each head on its own when heads repeat, reorder or repeat the names of the head before', () => {
    // Names where the previous head had them are taken from it without a look-up: what each head
    // says must still be what it gets, repeats combined or refused.
    const heads: Array<[string, Record<string, unknown> | number]> = [
      ['Host: a\r\nX-A: 1\r\nSet-Cookie: s=1\r\n', { host: 'a', 'x-a': '1', 'set-cookie': ['s=1'] }],
      ['Host: a\r\nX-A: 1\r\nSet-Cookie: s=1\r\n', { host: 'a', 'x-a': '1', 'set-cookie': ['s=1'] }],
      ['Host: a\r\nX-A: 1\r\nX-A: 2\r\n', { host: 'a', 'x-a': '1, 2' }],
      ['Host: a\r\nX-A: 1\r\nX-A: 2\r\n', { host: 'a', 'x-a': '1, 2' }],
      ['Host: a\r\nHost: b\r\n', 400],
      ['Host: a\r\nHost: b\r\n', 400],
      ['X-A: 1\r\nHost: a\r\nx-a: 3\r\nSet-Cookie: s=1\r\nset-cookie: t=2\r\n', { 'x-a': '1, 3', host: 'a', 'set-cookie': ['s=1', 't=2'] }],
      ['x-a: 1\r\nHost: a\r\n', { 'x-a': '1', host: 'a' }],
      ['X-A: 1\r\nHost: a\r\nX-B: 2\r\n', { 'x-a': '1', host: 'a', 'x-b': '2' }],
      ['Host: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n', 400],
      ['Host: a\r\nContent-Length: 1\r\n', { host: 'a', 'content-length': '1' }],
    ];
    for (const [lines, want] of heads) {
      const text = `GET / HTTP/1.1\r\n${lines}\r\n`;
      if (typeof want === 'number') expect(refusal(text)).toBe(want);
      else expect(request(text).headers).toEqual(want);
    }
  });

  it('parses the request line and headers: lower-case names, repeats combined as node:http does', () => {
    const h = request(
      'POST /a?b=c HTTP/1.1\r\nHost: x.example\r\nX-A: 1\r\nx-a:  2 \r\nCookie: a=1\r\ncookie: b=2\r\nSet-Cookie: s=1\r\nset-cookie: t=2\r\nUser-Agent: one\r\nuser-agent: two\r\nContent-Length: 5\r\n\r\n',
    );
    expect(h.method).toBe('POST');
    expect(h.target).toBe('/a?b=c');
    expect(h.minor).toBe(1);
    expect(h.headers).toEqual({
      host: 'x.example',
      'x-a': '1, 2',
      cookie: 'a=1; b=2',
      'set-cookie': ['s=1', 't=2'],
      'user-agent': 'one',
      'content-length': '5',
    });
    expect(requestFraming(h)).toEqual({ kind: 'length', length: 5 });
  });

  it('frames bodies by Content-Length or chunked; none without either', () => {
    expect(requestFraming(request('GET / HTTP/1.1\r\nhost: a\r\n\r\n'))).toEqual({ kind: 'none' });
    expect(requestFraming(request('POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n'))).toEqual({ kind: 'none' });
    expect(requestFraming(request('POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: Chunked\r\n\r\n'))).toEqual({ kind: 'chunked' });
  });

  it('refuses what smuggling and splitting attacks rely on, with the status to answer', () => {
    const cases: Array<[string, number]> = [
      ['POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n', 400],
      ['POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n', 400],
      ['POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\n', 400],
      ['POST / HTTP/1.1\r\nhost: a\r\ncontent-length: +5\r\n\r\n', 400],
      ['POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 0x5\r\n\r\n', 400],
      ['POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5, 5\r\n\r\n', 400],
      ['POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: gzip, chunked\r\n\r\n', 501],
      ['POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ntransfer-encoding: identity\r\n\r\n', 400],
      ['POST / HTTP/1.0\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n', 400],
      ['POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding : chunked\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nhost: a\r\nx-a: 1\r\n  folded\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nhost: a\r\nx-a: 1\nx-b: 2\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nhost: a\r\nx-a: 1\rx-b: 2\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nhost: a\r\nx-a: a\x00b\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nhost: a\r\n: x\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nhost: a\r\nno colon\r\n\r\n', 400],
      ['GET /a b HTTP/1.1\r\nhost: a\r\n\r\n', 400],
      ['GET  / HTTP/1.1\r\nhost: a\r\n\r\n', 400],
      ['GET /\x7f HTTP/1.1\r\nhost: a\r\n\r\n', 400],
      ['G(T / HTTP/1.1\r\nhost: a\r\n\r\n', 400],
      ['GET / HTTP/2.0\r\nhost: a\r\n\r\n', 505],
      ['GET / HTTX/1.1\r\nhost: a\r\n\r\n', 400],
      ['GET /\r\nhost: a\r\n\r\n', 400],
    ];
    for (const [text, status] of cases) expect([JSON.stringify(text), refusal(text)]).toEqual([JSON.stringify(text), status]);
  });

  it('bounds the head: more than the line limit or the byte limit is 431', () => {
    const many = `GET / HTTP/1.1\r\n${Array.from({ length: 101 }, (_, i) => `x-${i}: v\r\n`).join('')}\r\n`;
    expect(refusal(many)).toBe(431);
    const big = `GET / HTTP/1.1\r\nx: ${'a'.repeat(LIMITS.maxHeadBytes)}\r\n\r\n`;
    expect(refusal(big)).toBe(431);
  });
});

describe('HTTP/1.1 response heads', () => {
  const response = (text: string) => {
    const b = Buffer.from(text, 'latin1');
    return parseResponseHead(b, 0, findHeadEnd(b, 0));
  };
  it('parses the status line (reason optional) and frames the body by method and status', () => {
    const r = response('HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n');
    expect([r.status, r.reason, r.minor]).toEqual([200, 'OK', 1]);
    expect(responseFraming(r, 'GET')).toEqual({ kind: 'length', length: 3 });
    expect(responseFraming(r, 'HEAD')).toEqual({ kind: 'none' });
    expect(responseFraming(response('HTTP/1.1 204\r\n\r\n'), 'GET')).toEqual({ kind: 'none' });
    expect(responseFraming(response('HTTP/1.0 200 OK\r\n\r\n'), 'GET')).toEqual({ kind: 'close' });
    expect(responseFraming(response('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n'), 'GET')).toEqual({ kind: 'chunked' });
  });
  it('refuses a malformed status line and CL with TE', () => {
    expect(() => response('HTTP/1.1 2000 OK\r\n\r\n')).toThrow(HeadError);
    expect(() => response('HTTP/1.1 099 OK\r\n\r\n')).toThrow(HeadError);
    expect(() => responseFraming(response('HTTP/1.1 200 OK\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n'), 'GET')).toThrow(HeadError);
  });
});

describe('HTTP/1.1 bodies', () => {
  it('decodes chunked bodies split anywhere, with extensions and trailers, and stops at their end', () => {
    const wire = Buffer.from('5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nx-t: 1\r\n\r\nNEXT', 'latin1');
    for (let cut = 0; cut <= wire.length; cut++) {
      const r = decodeChunked([wire.subarray(0, cut), wire.subarray(cut)]);
      expect(r.body.toString()).toBe('hello 0123456789');
      expect(r.trailers).toEqual({ 'x-t': '1' });
      expect(r.used).toBe(wire.length - 4);
    }
  });

  it('refuses malformed chunked bodies', () => {
    for (const bad of [
      '5\r\nhelloX\r\n0\r\n\r\n',
      'g\r\n',
      '5\nhello\r\n',
      `${'1'.repeat(13)}\r\n`,
      `1;${'x'.repeat(2000)}\r\n`,
      '-1\r\n',
      '5\r\nhello\r\n0\r\nbad trailer\r\n\r\n',
    ]) {
      expect(() => decodeChunked([Buffer.from(bad, 'latin1')]), JSON.stringify(bad)).toThrow(HeadError);
    }
  });

  it('takes exactly Content-Length bytes', () => {
    const got: Buffer[] = [];
    const d = new LengthDecoder(5, (c) => got.push(c));
    expect(d.feed(Buffer.from('hel'), 0, 3)).toBe(3);
    expect(d.feed(Buffer.from('loGET'), 0, 5)).toBe(2);
    expect(d.done).toBe(true);
    expect(Buffer.concat(got).toString()).toBe('hello');
  });
});

// Fuzzing (fast-check): whatever bytes arrive, the parser answers or refuses with HeadError.
const PIECES = [
  'GET',
  'POST',
  ' ',
  '  ',
  '/',
  '/a',
  'HTTP/1.1',
  'HTTP/1.0',
  'HTTP/9',
  '\r\n',
  '\n',
  '\r',
  ':',
  'host',
  'content-length',
  'transfer-encoding',
  'chunked',
  '0',
  '5',
  '-1',
  '99999999999999999999',
  ',',
  '\t',
  '\x00',
  '\x7f',
  '\xff',
  'x',
  ';',
  'connection',
  'close',
];
const headBytes = fc
  .array(fc.oneof(fc.constantFrom(...PIECES), fc.string({ maxLength: 4 })), { maxLength: 40 })
  .map((p) => Buffer.from(`${p.join('')}\r\n\r\n`, 'latin1'));

describe('HTTP/1.1 parser fuzzing', () => {
  it('any head: parsed or refused with HeadError, never another error', () => {
    fc.assert(
      fc.property(headBytes, (b) => {
        const end = findHeadEnd(b, 0);
        try {
          const h = parseRequestHead(b, 0, end, LIMITS);
          const f = requestFraming(h);
          // What is accepted is well-formed: a token method, no whitespace in the target.
          expect(h.method).toMatch(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/);
          expect(h.target).not.toMatch(/[\s\x00-\x1f\x7f]/);
          if (f.kind === 'length') expect(Number.isSafeInteger(f.length)).toBe(true);
        } catch (err) {
          if (!(err instanceof HeadError)) throw err;
        }
        try {
          responseFraming(parseResponseHead(b, 0, end, LIMITS), 'GET');
        } catch (err) {
          if (!(err instanceof HeadError)) throw err;
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('a head written by headerLines parses back to the same headers', () => {
    const name = fc
      .stringMatching(/^[a-z][a-z0-9-]{0,15}$/)
      .filter((n) => !['host', 'content-length', 'transfer-encoding', 'set-cookie', 'cookie'].includes(n));
    const value = fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e]{0,30}[\x21-\x7e])?$/);
    fc.assert(
      fc.property(fc.dictionary(name, value, { maxKeys: 20 }), (headers) => {
        const b = Buffer.from(`GET / HTTP/1.1\r\nhost: a\r\n${headerLines(headers)}\r\n`, 'latin1');
        const h = parseRequestHead(b, 0, findHeadEnd(b, 0), LIMITS);
        expect(h.headers).toEqual({ host: 'a', ...headers });
      }),
      { numRuns: 500 },
    );
  });

  it('a chunked body fed in any slices decodes to the body sent', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 10 }),
        fc.boolean(),
        (chunks, cuts, ext) => {
          const wire = Buffer.concat([
            ...chunks.flatMap((c) => [Buffer.from(`${c.length.toString(16)}${ext ? ';a=b' : ''}\r\n`), Buffer.from(c), Buffer.from('\r\n')]),
            Buffer.from('0\r\n\r\n'),
          ]);
          const parts: Buffer[] = [];
          let at = 0;
          for (let i = 0; at < wire.length; i++) {
            const n = cuts[i % cuts.length]!;
            parts.push(wire.subarray(at, at + n));
            at += n;
          }
          const r = decodeChunked(parts);
          expect(r.body.equals(Buffer.concat(chunks.map((c) => Buffer.from(c))))).toBe(true);
          expect(r.used).toBe(wire.length);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('any chunked bytes: decoded or refused with HeadError', () => {
    const pieces = fc.constantFrom('0', '5', 'a', 'F', 'fffffffffffff', '\r\n', '\n', '\r', ';', 'x', ':', ' ', 'hello', '\x00');
    fc.assert(
      fc.property(fc.array(pieces, { maxLength: 30 }), (p) => {
        const b = Buffer.from(p.join(''), 'latin1');
        const d = new ChunkedDecoder(() => undefined);
        try {
          const used = d.feed(b, 0, b.length);
          expect(used).toBeLessThanOrEqual(b.length);
        } catch (err) {
          if (!(err instanceof HeadError)) throw err;
        }
      }),
      { numRuns: 3000 },
    );
  });
});
