// The upstream HTTP/1.1 client against a real node:http server on loopback.
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { H1Pool, keepAliveTimeoutMs, type H1FailureKind, type H1ResponseHead } from './client';

const servers: Server[] = [];
const pools: H1Pool[] = [];
afterEach(() => {
  for (const p of pools.splice(0)) p.close();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    s.close();
  }
});

async function backend(handler: Parameters<typeof createServer>[1], keepAliveTimeout = 10_000): Promise<{ port: number; sockets: () => number }> {
  const srv = createServer({ keepAliveTimeout }, handler);
  servers.push(srv);
  let sockets = 0;
  srv.on('connection', () => sockets++);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as AddressInfo).port, sockets: () => sockets };
}

function pool(port: number, maxConnections = 10): H1Pool {
  const p = new H1Pool({ host: '127.0.0.1', port, maxConnections, connectTimeoutMs: 1000 });
  pools.push(p);
  return p;
}

interface Result {
  status: number;
  headers: Record<string, unknown>;
  body: string;
  trailers: Record<string, unknown>;
}

function call(p: H1Pool, method: string, path: string, headers: Record<string, string>, body?: Buffer[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    const c = p.request(method, path, 'backend.test', headers, {
      onHead(h: H1ResponseHead) {
        const parts: Buffer[] = [];
        h.body.on('data', (d: Buffer) => parts.push(d));
        h.body.on('error', reject);
        h.body.on('end', () => h.onComplete((trailers) => resolve({ status: h.status, headers: h.headers, body: Buffer.concat(parts).toString(), trailers })));
      },
      onFailure(kind: H1FailureKind, message: string) {
        reject(Object.assign(new Error(message), { kind }));
      },
    });
    for (const b of body ?? []) c.write(b);
    c.end();
  });
}

/** The response head of one bodiless request. */
function responseHead(p: H1Pool, method: string, path: string): Promise<H1ResponseHead> {
  return new Promise((resolve, reject) => {
    p.request(method, path, 'backend.test', {}, { onHead: resolve, onFailure: (_k, m) => reject(new Error(m)) }).end();
  });
}

describe('waypoint HTTP/1.1 client', () => {
  it('reuses one connection for sequential requests, sends bodies by length or chunked, reads chunked responses with trailers', async () => {
    const b = await backend((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => {
        const body = Buffer.concat(parts).toString();
        const info = `${req.method} ${req.url} host=${req.headers.host} te=${req.headers['transfer-encoding'] ?? '-'} cl=${req.headers['content-length'] ?? '-'} ${body}`;
        if (req.url === '/chunked') {
          res.writeHead(200, { trailer: 'x-sum' });
          res.write(info);
          res.addTrailers({ 'x-sum': '42' });
          res.end();
        } else res.end(info);
      });
    });
    const p = pool(b.port);
    const a = await call(p, 'GET', '/a', {});
    expect(a.body).toBe('GET /a host=backend.test te=- cl=- ');
    const up = await call(p, 'POST', '/up', { 'content-length': '5' }, [Buffer.from('he'), Buffer.from('llo')]);
    expect(up.body).toBe('POST /up host=backend.test te=- cl=5 hello');
    const chunked = await call(p, 'PUT', '/chunked', {}, [Buffer.from('ab'), Buffer.from('c')]);
    expect(chunked.body).toBe('PUT /chunked host=backend.test te=chunked cl=- abc');
    expect(chunked.trailers).toEqual({ 'x-sum': '42' });
    const empty = await call(p, 'POST', '/empty', {});
    expect(empty.body).toBe('POST /empty host=backend.test te=- cl=0 ');
    expect(b.sockets()).toBe(1);
  });

  it('opens at most max_connections and queues the rest; a connection: close response is not reused', async () => {
    const b = await backend((req, res) => {
      if (req.url === '/close') res.setHeader('connection', 'close');
      setTimeout(() => res.end('ok'), 30);
    });
    const p = pool(b.port, 2);
    const all = await Promise.all(Array.from({ length: 6 }, () => call(p, 'GET', '/', {})));
    expect(all.map((r) => r.body)).toEqual(Array(6).fill('ok'));
    expect(b.sockets()).toBe(2);
    await call(p, 'GET', '/close', {});
    // One of the two connections closed: two requests at once need a new one.
    await Promise.all([call(p, 'GET', '/', {}), call(p, 'GET', '/', {})]);
    expect(b.sockets()).toBe(3);
  });

  it('classifies failures: refused is a connect failure, a reset before the head is a reset, headers with CR/LF throw before sending', async () => {
    const closed = await backend(() => undefined);
    const port = closed.port;
    await new Promise<void>((r) => servers.pop()!.close(() => r()));
    await expect(call(pool(port), 'GET', '/', {})).rejects.toMatchObject({ kind: 'connect-failure' });
    const rude = await backend((req) => req.socket.destroy());
    await expect(call(pool(rude.port), 'GET', '/', {})).rejects.toMatchObject({ kind: 'reset' });
    expect(() => pool(rude.port).request('GET', '/', 'a', { 'x-a': 'v\r\nx-b: injected' }, { onHead() {}, onFailure() {} })).toThrow(/invalid character/);
    expect(() => pool(rude.port).request('GET', '/a b', 'a', {}, { onHead() {}, onFailure() {} })).toThrow(/whitespace/);
  });

  it('a response cut mid-body errors the body instead of ending it', async () => {
    const b = await backend((_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    await expect(call(pool(b.port), 'GET', '/', {})).rejects.toThrow(/before the response body ended/);
  });

  it('hands a response that arrived whole with its head over as `whole` (its body stream made only when asked for), and a split one as a stream', async () => {
    const b = await backend((req, res) => {
      if (req.url === '/split') {
        res.writeHead(200, { 'content-length': '10' });
        res.flushHeaders();
        setTimeout(() => res.end('0123456789'), 30);
      } else if (req.url === '/none') {
        res.writeHead(204);
        res.end();
      } else res.end('whole body');
    });
    const p = pool(b.port);
    const get = (path: string, method = 'GET'): Promise<H1ResponseHead> => responseHead(p, method, path);
    const whole = await get('/');
    expect(whole.whole?.toString()).toBe('whole body');
    // Still readable as a stream, for a reader that wants one (a retry draining it, a mirror).
    const parts: Buffer[] = [];
    await new Promise<void>((r) => whole.body.on('data', (d: Buffer) => parts.push(d)).on('end', r));
    expect(Buffer.concat(parts).toString()).toBe('whole body');
    const none = await get('/none');
    expect([none.status, none.whole?.length]).toEqual([204, 0]);
    const head = await get('/', 'HEAD');
    expect([head.status, head.whole?.length]).toEqual([200, 0]);
    const split = await get('/split');
    expect(split.whole).toBeUndefined();
    const got: Buffer[] = [];
    await new Promise<void>((r) => split.body.on('data', (d: Buffer) => got.push(d)).on('end', r));
    expect(Buffer.concat(got).toString()).toBe('0123456789');
    // All on one connection: a whole response leaves it reusable.
    const after = await get('/');
    expect(after.whole?.toString()).toBe('whole body');
    expect(b.sockets()).toBe(1);
  });
});

describe("waypoint HTTP/1.1 client and the backend's keep-alive timeout", () => {
  it('reads the timeout `Keep-Alive: timeout=N` announces; no timeout, none', () => {
    expect(keepAliveTimeoutMs('timeout=5')).toBe(5_000);
    expect(keepAliveTimeoutMs('max=100, timeout=2')).toBe(2_000);
    expect(keepAliveTimeoutMs('Timeout = 3;max=9')).toBe(3_000);
    expect(keepAliveTimeoutMs(['max=3', 'timeout=4'])).toBe(4_000);
    expect(keepAliveTimeoutMs('max=100')).toBeUndefined();
    expect(keepAliveTimeoutMs('timeout=abc')).toBeUndefined();
    expect(keepAliveTimeoutMs('xtimeout=5')).toBeUndefined();
  });

  it('does not reuse a connection within 1 s of the keep-alive timeout the backend announced (node:http closes it then)', async () => {
    // node:http announces `Keep-Alive: timeout=2` and destroys a connection idle for 2 s.
    const b = await backend((_req, res) => res.end('ok'), 2_000);
    const p = pool(b.port);
    expect((await call(p, 'GET', '/1', {})).body).toBe('ok');
    await new Promise((r) => setTimeout(r, 300));
    expect((await call(p, 'GET', '/2', {})).body).toBe('ok');
    expect(b.sockets()).toBe(1); // reused: well before the deadline
    await new Promise((r) => setTimeout(r, 1_200));
    // 1.2 s idle: past 2 s - 1 s, so a new connection, not the one the backend is about to close.
    expect((await call(p, 'GET', '/3', {})).body).toBe('ok');
    expect(b.sockets()).toBe(2);
  });

  it('never reuses a connection whose backend announced a keep-alive timeout of 1 s or less', async () => {
    const b = await backend((_req, res) => res.end('ok'), 1_000);
    const p = pool(b.port);
    for (let i = 0; i < 3; i++) expect((await call(p, 'GET', `/${i}`, {})).body).toBe('ok');
    expect(b.sockets()).toBe(3);
  });

  it('follows a backend whose announced timeout changes from one response to the next (the parse is kept per value)', async () => {
    // The pool keeps the last value it parsed: a different value must be read again, not taken from it.
    const b = await backend((req, res) => {
      res.setHeader('keep-alive', req.url === '/short' ? 'timeout=1' : 'timeout=30');
      res.end('ok');
    });
    const p = pool(b.port);
    for (const path of ['/long', '/long', '/short', '/long', '/long']) expect((await call(p, 'GET', path, {})).body).toBe('ok');
    // /long twice on one connection; /short's answer (timeout=1) retires it; the next two share a new one.
    expect(b.sockets()).toBe(2);
  });
});

describe('waypoint HTTP/1.1 client reads (one shared read buffer for all connections)', () => {
  it('hands on bodies, whole responses and split heads intact although later reads reuse the buffer', async () => {
    // Two backends answering at once: their reads interleave in the one buffer. Whole answers are
    // kept until every request is done, streamed bodies are read slowly (paused between chunks),
    // and a head arrives in two pieces.
    const serve =
      (fill: string): Parameters<typeof createServer>[1] =>
      (req, res) => {
        if (req.url === '/big') {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          let n = 0;
          const more = (): void => {
            if (n++ === 20) return void res.end();
            res.write(Buffer.alloc(32 * 1024, `${fill}${n % 10}`));
            setImmediate(more);
          };
          more();
        } else if (req.url === '/split') {
          res.socket!.write('HTTP/1.1 200 OK\r\ncontent-le');
          setTimeout(() => res.socket!.write(`ngth: 4\r\n\r\n${fill.repeat(4)}`), 20);
        } else res.end(fill.repeat(100));
      };
    const pools = [pool((await backend(serve('a'))).port), pool((await backend(serve('b'))).port)];
    const ask = (p: H1Pool, path: string): Promise<H1ResponseHead> => responseHead(p, 'GET', path);
    const slowRead = async (h: H1ResponseHead): Promise<Buffer> => {
      const parts: Buffer[] = [];
      for await (const c of h.body) {
        parts.push(c as Buffer);
        await new Promise((r) => setTimeout(r, 1));
      }
      return Buffer.concat(parts);
    };
    const [wa, wb, sa, sb, ba, bb] = await Promise.all([
      ask(pools[0]!, '/'),
      ask(pools[1]!, '/'),
      ask(pools[0]!, '/split'),
      ask(pools[1]!, '/split'),
      ask(pools[0]!, '/big'),
      ask(pools[1]!, '/big'),
    ]);
    const [bodyA, bodyB] = await Promise.all([slowRead(ba!), slowRead(bb!)]);
    const expected = (fill: string): Buffer => Buffer.concat(Array.from({ length: 20 }, (_, i) => Buffer.alloc(32 * 1024, `${fill}${(i + 1) % 10}`)));
    expect(bodyA.equals(expected('a'))).toBe(true);
    expect(bodyB.equals(expected('b'))).toBe(true);
    expect([wa!.whole?.toString(), wb!.whole?.toString()]).toEqual(['a'.repeat(100), 'b'.repeat(100)]);
    expect([sa!.whole?.toString(), sb!.whole?.toString()]).toEqual(['aaaa', 'bbbb']);
  });
});

describe('waypoint HTTP/1.1 client: a reused connection the backend closed as the request went out', () => {
  /**
   * A raw backend that answers the first `answered` requests of every connection (keep-alive, no
   * Keep-Alive header: it announces no timeout) and closes the connection, without a byte, when the
   * next request arrives — a server closing an idle connection just as the request crossed it.
   */
  async function closingBackend(answered: number): Promise<{ port: number; connections: () => number; requests: string[] }> {
    const requests: string[] = [];
    let connections = 0;
    const srv = createNetServer((s) => {
      connections++;
      let n = 0;
      let got = '';
      s.on('data', (d: Buffer) => {
        got += d.toString('latin1');
        let end = got.indexOf('\r\n\r\n');
        while (end >= 0) {
          const head = got.slice(0, end);
          got = got.slice(end + 4);
          const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
          got = got.slice(length);
          requests.push(`${connections}:${head.split(' ', 2).join(' ')}`);
          if (n++ >= answered) return void s.destroy();
          s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
          end = got.indexOf('\r\n\r\n');
        }
      });
      s.on('error', () => undefined);
    });
    nets.push(srv);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    return { port: (srv.address() as AddressInfo).port, connections: () => connections, requests };
  }
  const nets: NetServer[] = [];
  afterEach(() => {
    for (const s of nets.splice(0)) s.close();
  });

  function countedPool(port: number): { p: H1Pool; resent: () => number } {
    let resent = 0;
    const p = new H1Pool({ host: '127.0.0.1', port, maxConnections: 10, connectTimeoutMs: 1000, onResent: () => resent++ });
    pools.push(p);
    return { p, resent: () => resent };
  }

  it('sends an idempotent request without a body once more on a new connection, and counts it', async () => {
    const b = await closingBackend(1);
    const { p, resent } = countedPool(b.port);
    expect((await call(p, 'GET', '/1', {})).body).toBe('ok');
    // The pooled connection is reused and closed by the backend: the GET is sent again on a new one.
    expect((await call(p, 'GET', '/2', {})).body).toBe('ok');
    expect((await call(p, 'PUT', '/3', { 'content-length': '0' })).body).toBe('ok');
    expect((await call(p, 'DELETE', '/4', {})).body).toBe('ok');
    expect(b.requests).toEqual(['1:GET /1', '1:GET /2', '2:GET /2', '2:PUT /3', '3:PUT /3', '3:DELETE /4', '4:DELETE /4']);
    expect(resent()).toBe(3);
  });

  it('does not send a POST, or a request whose body went out, again: 503 UC material (a reset)', async () => {
    const b = await closingBackend(1);
    const { p, resent } = countedPool(b.port);
    expect((await call(p, 'GET', '/1', {})).body).toBe('ok');
    await expect(call(p, 'POST', '/2', {})).rejects.toMatchObject({ kind: 'reset' });
    expect((await call(p, 'GET', '/3', {})).body).toBe('ok'); // a new connection
    await expect(call(p, 'PUT', '/4', { 'content-length': '4' }, [Buffer.from('data')])).rejects.toMatchObject({ kind: 'reset' });
    expect(resent()).toBe(0);
  });

  it('never sends again on a connection that was new, and sends again only once', async () => {
    const b = await closingBackend(0); // closes every connection at its first request
    const { p, resent } = countedPool(b.port);
    await expect(call(p, 'GET', '/new', {})).rejects.toMatchObject({ kind: 'reset' });
    expect(b.requests).toEqual(['1:GET /new']);
    expect(resent()).toBe(0);
    // A reused connection whose replacement closes too: one resend, then the reset.
    const c = await closingBackend(1);
    const q = countedPool(c.port);
    expect((await call(q.p, 'GET', '/1', {})).body).toBe('ok');
    nets[1]!.removeAllListeners('connection');
    nets[1]!.on('connection', (s) => s.destroy());
    await expect(call(q.p, 'GET', '/2', {})).rejects.toMatchObject({ kind: 'reset' });
    expect(q.resent()).toBe(1);
  });
});
