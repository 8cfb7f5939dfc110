// The waypoint's downstream HTTP/2 request/response pair (http2/server.ts) against a real
// node:http2 client on loopback: what the client receives (status, headers, body, trailers, where
// END_STREAM falls), the checks on a head, and what the compatibility API used to answer itself.
import { connect, constants, createServer, type ClientHttp2Session, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admitStream, H2Request, H2Response } from './server';

type Handler = (req: H2Request, res: H2Response) => void;

let server: Http2Server;
let client: ClientHttp2Session;
let handler: Handler = () => undefined;

beforeAll(async () => {
  server = createServer();
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    if (admitStream(stream, headers)) handler(new H2Request(stream, headers), new H2Response(stream));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});

afterAll(async () => {
  client.close();
  await new Promise((r) => server.close(r));
});

interface Got {
  status: number;
  headers: IncomingHttpHeaders;
  /** END_STREAM came on the response's HEADERS frame. */
  endAfterHeaders: boolean;
  body: string;
  trailers: IncomingHttpHeaders | undefined;
  informational: number[];
  rstCode: number;
}

function request(headers: Record<string, string>, body?: string): Promise<Got> {
  return new Promise((resolve, reject) => {
    const st = client.request({ ':path': '/', ...headers }, { endStream: body === undefined });
    const got: Got = { status: 0, headers: {}, endAfterHeaders: false, body: '', trailers: undefined, informational: [], rstCode: 0 };
    st.on('headers', (h) => got.informational.push(Number(h[':status'])));
    st.on('response', (h, flags) => {
      got.status = Number(h[':status']);
      got.headers = h;
      got.endAfterHeaders = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    st.on('trailers', (t) => (got.trailers = t));
    st.setEncoding('utf8').on('data', (d: string) => (got.body += d));
    st.on('error', () => undefined);
    st.on('close', () => {
      got.rstCode = st.rstCode ?? 0;
      resolve(got);
    });
    st.on('timeout', reject);
    if (body !== undefined) st.end(body);
  });
}

describe('H2Response', () => {
  it('sends a whole response: status, headers, body, a date, no trailers', async () => {
    handler = (_req, res) => {
      res.setHeader('x-extra', 'e');
      res.writeHead(201, { 'content-type': 'text/plain', 'x-given': ['a', 'b'], skipped: undefined });
      res.end(Buffer.from('hello'));
    };
    const g = await request({});
    expect(g.status).toBe(201);
    expect(g.headers['content-type']).toBe('text/plain');
    expect(g.headers['x-given']).toBe('a, b');
    expect(g.headers['x-extra']).toBe('e');
    expect(g.headers.skipped).toBeUndefined();
    expect(g.headers.date).toBeTruthy();
    expect(g.body).toBe('hello');
    expect(g.endAfterHeaders).toBe(false);
    expect(g.trailers === undefined || Object.keys(g.trailers).length === 0).toBe(true);
    expect(g.rstCode).toBe(0);
  });

  it('sends a bodiless response as one HEADERS frame with END_STREAM', async () => {
    handler = (_req, res) => {
      res.writeHead(204, {});
      res.end();
    };
    const g = await request({});
    expect(g.status).toBe(204);
    expect(g.endAfterHeaders).toBe(true);
    expect(g.body).toBe('');
  });

  it('sends trailers after a whole body, and after a streamed one', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/grpc' });
      res.addTrailers({ 'grpc-status': '0' });
      res.end(Buffer.from('x'));
    };
    const whole = await request({});
    expect(whole.body).toBe('x');
    expect(whole.trailers?.['grpc-status']).toBe('0');

    handler = (_req, res) => {
      res.writeHead(200, {});
      res.write(Buffer.from('a'));
      setTimeout(() => {
        res.write(Buffer.from('b'));
        res.addTrailers({ 'x-sum': '2' });
        res.end();
      }, 10);
    };
    const streamed = await request({});
    expect(streamed.body).toBe('ab');
    expect(streamed.trailers?.['x-sum']).toBe('2');
    expect(streamed.rstCode).toBe(0);
  });

  it('answers a gRPC status trailers-only: one HEADERS frame with END_STREAM', async () => {
    handler = (_req, res) => res.trailersOnly({ 'content-type': 'application/grpc', 'grpc-status': '7' });
    const g = await request({});
    expect(g.status).toBe(200);
    expect(g.headers['grpc-status']).toBe('7');
    expect(g.endAfterHeaders).toBe(true);
  });

  it('refuses an invalid head when it is set, and nothing goes out until a valid one', async () => {
    const errors: string[] = [];
    handler = (_req, res) => {
      for (const h of [{ 'bad name': 'v' }, { 'x-v': 'a\r\nb' }, { connection: 'close' }, { 'x-list': ['ok', 'bad\n'] }]) {
        try {
          res.writeHead(200, h);
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
      expect(res.headersSent).toBe(false);
      expect(() => res.writeHead(102, {})).toThrow(RangeError);
      res.writeHead(200, { 'x-ok': '1' });
      res.end('fine');
    };
    const g = await request({});
    expect(errors).toHaveLength(4);
    expect(g.status).toBe(200);
    expect(g.headers['x-ok']).toBe('1');
    expect(g.body).toBe('fine');
  });

  it("calls 'close' listeners once, with the response as this, when the stream closes", async () => {
    const seen: unknown[] = [];
    let response: H2Response | undefined;
    handler = (_req, res) => {
      response = res;
      res.on('close', function (this: H2Response) {
        seen.push(this);
      });
      res.once('close', function (this: H2Response) {
        seen.push(this);
      });
      res.end('bye');
    };
    await request({});
    await new Promise((r) => setTimeout(r, 20));
    expect(seen).toEqual([response, response]);
    expect(response!.writableEnded).toBe(true);
  });

  it('destroy() resets the stream with INTERNAL_ERROR', async () => {
    handler = (_req, res) => {
      res.writeHead(200, {});
      res.write(Buffer.from('partial'));
      setTimeout(() => res.destroy(), 10);
    };
    const g = await request({});
    expect(g.body).toBe('partial');
    expect(g.rstCode).toBe(constants.NGHTTP2_INTERNAL_ERROR);
  });
});

describe('H2Request', () => {
  it('gives the method, path and headers, and the body through the stream', async () => {
    let seen: { method: string; url: string; header: unknown; body: string } | undefined;
    handler = (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.once('end', () => {
        seen = { method: req.method, url: req.url, header: req.headers['x-h'], body };
        expect(req.readableEnded).toBe(true);
        res.end('ok');
      });
    };
    const g = await request({ ':method': 'POST', ':path': '/p?q=1', 'x-h': 'v' }, 'payload');
    expect(g.body).toBe('ok');
    expect(seen).toEqual({ method: 'POST', url: '/p?q=1', header: 'v', body: 'payload' });
  });
});

describe('admitStream', () => {
  it('answers CONNECT 405 and an unknown expectation 417 without the handler', async () => {
    let called = 0;
    handler = (_req, res) => {
      called++;
      res.end('handled');
    };
    const connectReq = await new Promise<number>((resolve) => {
      const st = client.request({ ':method': 'CONNECT', ':authority': 'example:443' });
      st.on('response', (h) => resolve(Number(h[':status'])));
      st.on('error', () => undefined);
    });
    expect(connectReq).toBe(405);
    const g = await request({ expect: 'something-else' });
    expect(g.status).toBe(417);
    expect(called).toBe(0);
  });

  it('sends 100 Continue for expect: 100-continue, then the request reaches the handler', async () => {
    handler = (_req, res) => res.end('after continue');
    const g = await request({ expect: '100-continue' });
    expect(g.informational).toContain(100);
    expect(g.status).toBe(200);
    expect(g.body).toBe('after continue');
  });
});
