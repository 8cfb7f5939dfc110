// The downstream HTTP/1.1 server on real loopback sockets: what a client (or an attacker) sees.
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { serveHttp1, type H1Handler, type H1ServerOptions } from './server';

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

async function listen(handler: H1Handler, o: H1ServerOptions = {}): Promise<number> {
  const srv = createServer({ allowHalfOpen: true }, (s) => serveHttp1(s, handler, o));
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return (srv.address() as AddressInfo).port;
}

/** Send `bytes`, collect what comes back until the server closes or `untilMs` passes. */
async function exchange(port: number, bytes: string | string[], untilMs = 1500, gapMs = 0): Promise<{ text: string; closed: boolean }> {
  const s: Socket = connect(port, '127.0.0.1');
  await once(s, 'connect');
  let text = '';
  let closed = false;
  s.on('data', (d: Buffer) => (text += d.toString('latin1')));
  s.on('close', () => (closed = true));
  s.on('error', () => undefined);
  for (const b of Array.isArray(bytes) ? bytes : [bytes]) {
    s.write(Buffer.from(b, 'latin1'));
    if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
  }
  const end = Date.now() + untilMs;
  while (!closed && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  s.destroy();
  return { text, closed };
}

const echo: H1Handler = (req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (c: Buffer) => parts.push(c));
  req.on('end', () => {
    const body = Buffer.concat(parts).toString();
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`${req.method} ${req.url} ${body}`);
  });
};

const statuses = (text: string): string[] => [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]!);

describe('waypoint HTTP/1.1 server', () => {
  it("emits 'finish' then 'close' from end() itself, once, even when the connection closes after", async () => {
    const events: string[] = [];
    const port = await listen((_req, res) => {
      res.on('finish', () => events.push('finish'));
      res.on('close', () => events.push('close'));
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('x');
      events.push('end returned');
    });
    const r = await exchange(port, 'GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n', 500);
    expect(statuses(r.text)).toEqual(['200']);
    expect(r.closed).toBe(true);
    expect(events).toEqual(['finish', 'close', 'end returned']);
  });

  it("makes no body stream for a request without a body, and reports a cut body to 'error' listeners added before the body was read", async () => {
    const seen: string[] = [];
    const port = await listen((req, res) => {
      req.on('error', (err: Error) => seen.push(`${req.url} error: ${err.message}`));
      if (req.url === '/bodiless') {
        // Only an error listener: no stream machinery was made for it.
        seen.push(`bodiless readableEnded=${req.readableEnded}`);
        res.end('ok');
      }
      // '/cut' gets no answer: its client goes away before the body arrives.
    });
    const r = await exchange(port, 'GET /bodiless HTTP/1.1\r\nhost: a\r\n\r\n', 300);
    expect(statuses(r.text)).toEqual(['200']);
    await exchange(port, 'POST /cut HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\n', 100);
    const end = Date.now() + 2000;
    while (seen.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    expect(seen).toEqual(['bodiless readableEnded=false', '/cut error: aborted: the client closed before the request body ended']);
  });

  it('serves keep-alive requests and pipelined ones in order, with bodies by length and chunked', async () => {
    const port = await listen(echo);
    const r = await exchange(
      port,
      [
        'GET /one HTTP/1.1\r\nhost: a\r\n\r\nPOST /two HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\nabcPOST /three HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n2\r\nxy\r\n',
        '1\r\nz\r\n0\r\n\r\n',
      ],
      500,
    );
    expect(r.closed).toBe(false);
    const bodies = r.text.split(/(?=HTTP\/1\.1 )/).map((x) => x.split('\r\n\r\n')[1]);
    expect(bodies).toEqual(['GET /one ', 'POST /two abc', 'POST /three xyz']);
    expect(r.text).toMatch(/content-length: 9\r\n/);
  });

  it('refuses a request with both Content-Length and Transfer-Encoding before the handler sees it, and closes', async () => {
    let seen = 0;
    const port = await listen((req, res) => {
      seen++;
      echo(req, res);
    });
    const r = await exchange(
      port,
      'POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n',
    );
    expect(statuses(r.text)).toEqual(['400']);
    expect(r.closed).toBe(true);
    expect(seen).toBe(0);
  });

  it('answers 431 to an oversized head and 408 to one that takes too long, then closes', async () => {
    const port = await listen(echo, { headersTimeoutMs: 300, idleTimeoutMs: 5000 });
    const big = await exchange(port, `GET / HTTP/1.1\r\nx: ${'a'.repeat(20_000)}`);
    expect(statuses(big.text)).toEqual(['431']);
    expect(big.closed).toBe(true);
    const slow = await exchange(port, ['GET / HTTP/1.1\r\n', 'x: 1\r\n', 'y: 2\r\n', 'z: 3\r\n', 'w: 4\r\n'], 2000, 150);
    expect(statuses(slow.text)).toEqual(['408']);
    expect(slow.closed).toBe(true);
  });

  it('closes a connection idle between requests', async () => {
    const port = await listen(echo, { idleTimeoutMs: 200 });
    const r = await exchange(port, 'GET / HTTP/1.1\r\nhost: a\r\n\r\n', 3000);
    expect(statuses(r.text)).toEqual(['200']);
    expect(r.closed).toBe(true);
  });

  it('answers 100 Continue, chunks a response of unknown length, and closes after an HTTP/1.0 one', async () => {
    const port = await listen((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, {});
        res.write(Buffer.from('ab'));
        res.end();
      });
    });
    const r = await exchange(port, 'POST / HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 1\r\n\r\nx', 400);
    expect(r.text.startsWith('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n')).toBe(true);
    expect(r.text).toMatch(/transfer-encoding: chunked\r\n[\s\S]*\r\n\r\n2\r\nab\r\n0\r\n\r\n$/);
    const old = await exchange(port, 'GET / HTTP/1.0\r\n\r\n');
    expect(old.text).toMatch(/connection: close\r\n[\s\S]*\r\n\r\nab$/);
    expect(old.closed).toBe(true);
  });

  it('drops a request body the response did not wait for, and serves the next request', async () => {
    const port = await listen((req, res) => {
      if (req.url === '/deny') {
        res.writeHead(403, { 'content-length': '6' });
        res.end('denied');
        req.resume();
        return;
      }
      echo(req, res);
    });
    const r = await exchange(
      port,
      ['POST /deny HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\n01234', '56789GET /after HTTP/1.1\r\nhost: a\r\n\r\n'],
      500,
      50,
    );
    expect(statuses(r.text)).toEqual(['403', '200']);
    expect(r.text).toContain('GET /after');
  });

  it('serves the next request after a body its reader took slowly (a pause for the last chunk does not hold the connection)', async () => {
    const port = await listen((req, res) => {
      // A reader slower than the client: it pauses after every chunk.
      let n = 0;
      req.on('data', (c: Buffer) => {
        n += c.length;
        req.pause();
        setTimeout(() => req.resume(), 20);
      });
      req.on('end', () => res.end(`${req.url} ${n}`));
    });
    const body = 'x'.repeat(1_000_000);
    const r = await exchange(
      port,
      [`POST /big HTTP/1.1\r\nhost: a\r\ncontent-length: ${body.length}\r\n\r\n${body}`, 'GET /after HTTP/1.1\r\nhost: a\r\n\r\n'],
      2500,
      1500,
    );
    expect(statuses(r.text)).toEqual(['200', '200']);
    expect(r.text).toContain('/big 1000000');
    expect(r.text).toContain('/after 0');
  });

  it("keeps a connection's partial head, pipelined requests and unread body bytes while other connections are read", async () => {
    // Plain TCP connections share one read buffer: what outlives a read must have been copied out.
    const port = await listen((req, res) => {
      const parts: Buffer[] = [];
      const read = (): void => {
        req.on('data', (c: Buffer) => parts.push(c));
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end(`${req.method} ${req.url} ${String(req.headers['x-tag'])} ${Buffer.concat(parts).toString('latin1')};`);
        });
      };
      // A slow reader: the body waits while the other connections' requests are read.
      if (req.method === 'POST') setTimeout(read, 150);
      else read();
    });
    const noise = Array.from({ length: 12 }, (_, i) => `GET /noise${i} HTTP/1.1\r\nhost: n\r\nx-tag: ${'z'.repeat(40)}\r\n\r\n`);
    const [a, b, c] = await Promise.all([
      exchange(
        port,
        ['GET /a HTTP/1.1\r\nhost: a\r\nx-tag: fir', 'st\r\n\r\nGET /a2 HTTP/1.1\r\nhost: a\r\nx-tag: again\r\n\r\nGET /a3 HT', 'TP/1.1\r\nhost: a\r\n\r\n'],
        800,
        60,
      ),
      exchange(port, ['POST /b HTTP/1.1\r\nhost: b\r\nx-tag: second\r\ncontent-length: 12\r\n\r\nbbbb', 'BBBB', 'cccc'], 800, 40),
      exchange(port, noise, 800, 15),
    ]);
    expect(a.text).toContain('GET /a first ;');
    expect(a.text).toContain('GET /a2 again ;');
    expect(a.text).toContain('GET /a3 undefined ;');
    expect(statuses(a.text)).toEqual(['200', '200', '200']);
    expect(b.text).toContain('POST /b second bbbbBBBBcccc;');
    expect(statuses(c.text)).toHaveLength(12);
  });
});
