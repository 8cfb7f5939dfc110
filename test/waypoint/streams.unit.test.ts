// tcp_proxy listeners (bytes intact both ways, half-close), the route timeout spanning the whole
// response (not only the headers), and weighted round robin — end to end through the real delta
// ADS server, with real sockets on 127.0.0.1.
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Waypoint } from '../../waypoint/waypoint';
import { until } from '../support/until';
import { anyHost, backend, ControlPlane, freePort, prefixRoute, startPlainWaypoint, type Backend } from './fixture';

function get(port: number, path: string): Promise<{ status: number; body: string; aborted: boolean }> {
  return new Promise((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port, path, headers: { host: 'web' } }, (res) => {
      let body = '';
      let aborted = false;
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('aborted', () => (aborted = true));
      res.on('error', () => (aborted = true));
      res.on('close', () => resolve({ status: res.statusCode ?? 0, body, aborted: aborted || !res.complete }));
    });
    r.on('error', reject);
    r.end();
  });
}

describe('waypoint tcp_proxy, whole-response timeouts, weighted round robin', () => {
  const cp = new ControlPlane();
  let wp: Waypoint;
  let httpPort: number;
  let tcpPort: number;
  let echo: Server;
  let slowBody: Backend, heavy: Backend, light: Backend, slowHead: Backend, big: Backend;
  /** What /big answers: with a Content-Length, or chunked (no length). */
  const bigBody = randomBytes(24 * 1024 * 1024 + 13);
  /** How each request to slow-head ended at the backend: 'cut' when its connection closed before it answered. */
  const slowHeadEnds: string[] = [];

  beforeAll(async () => {
    await cp.start();
    // A TCP echo server that also answers a half-close by finishing its side.
    echo = createServer({ allowHalfOpen: true }, (s) => {
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    slowBody = await backend('slow-body', (_s, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first part;');
      setTimeout(() => res.end('second part'), 1500).unref();
      return true;
    });
    slowHead = await backend('slow-head', (_s, res) => {
      const t = setTimeout(() => res.end('late'), 3000);
      res.once('close', () => {
        clearTimeout(t);
        slowHeadEnds.push(res.writableFinished ? 'answered' : 'cut');
      });
      return true;
    });
    big = await backend('big', (s, res) => {
      res.writeHead(200, s.url.endsWith('chunked') ? { 'content-type': 'application/octet-stream' } : { 'content-length': String(bigBody.length) });
      // In pieces of several sizes, a millisecond apart (the waypoint reads them one by one): a
      // chunked response frames small ones by copying and writes large ones corked, and small ones
      // come while large ones still wait to go out.
      let at = 0;
      let i = 0;
      const sizes = [100, 70_000, 5_000, 200_000, 16_384, 3_000, 300_000, 700];
      const next = (): void => {
        if (at >= bigBody.length) return void res.end();
        const n = Math.min(sizes[i++ % sizes.length]!, bigBody.length - at);
        const ok = res.write(bigBody.subarray(at, at + n));
        at += n;
        if (ok) setTimeout(next, 1);
        else res.once('drain', () => setTimeout(next, 1));
      };
      next();
      return true;
    });
    heavy = await backend('heavy');
    light = await backend('light');
    httpPort = await freePort();
    tcpPort = await freePort();
    cp.cluster('echo', [(echo.address() as AddressInfo).port]);
    cp.cluster('slow-body', [slowBody.port]);
    cp.cluster('slow-head', [slowHead.port]);
    cp.cluster('big', [big.port]);
    cp.cluster('weighted', [
      { port: heavy.port, weight: 3 },
      { port: light.port, weight: 1 },
    ]);
    cp.tcpListener('tcp-listener', tcpPort, 'echo');
    cp.listener('http-listener', httpPort, 'routes');
    cp.routes(
      anyHost('routes', [
        prefixRoute('/slow-body', 'slow-body', 400),
        prefixRoute('/patient', 'slow-body', 0),
        prefixRoute('/weighted', 'weighted'),
        prefixRoute('/slow-head', 'slow-head'),
        prefixRoute('/big', 'big'),
      ]),
    );
    wp = await startPlainWaypoint(cp.address, [httpPort, tcpPort]);
  }, 20_000);

  afterAll(async () => {
    await wp?.stop();
    await cp.stop();
    echo?.close();
    for (const b of [slowBody, heavy, light, slowHead, big]) await b?.close();
  });

  it('sends large responses whole to a client that reads slowly, one after another on one connection', async () => {
    // Backpressure on the downstream socket: writes that wait in the kernel and in node, by length
    // and chunked, then the next response on the same keep-alive connection.
    const s = connect({ host: '127.0.0.1', port: httpPort });
    await new Promise((r) => s.once('connect', r));
    let parts: Buffer[] = [];
    s.on('data', (c: Buffer) => {
      parts.push(c);
      s.pause();
      setTimeout(() => s.resume(), 2).unref();
    });
    const bodyOf = async (path: string): Promise<Buffer> => {
      parts = [];
      s.write(`GET ${path} HTTP/1.1\r\nhost: web\r\n\r\n`);
      for (;;) {
        await new Promise((r) => setTimeout(r, 50));
        const received = Buffer.concat(parts);
        const end = received.indexOf('\r\n\r\n');
        if (end < 0) continue;
        const head = received.subarray(0, end).toString('latin1');
        const rest = received.subarray(end + 4);
        const length = /content-length: (\d+)/i.exec(head);
        if (length) {
          if (rest.length >= Number(length[1])) return rest.subarray(0, Number(length[1]));
        } else if (rest.subarray(-5).toString('latin1') === '0\r\n\r\n') {
          // Chunked: take the chunks apart.
          const parts: Buffer[] = [];
          let at = 0;
          for (;;) {
            const eol = rest.indexOf('\r\n', at);
            const n = Number.parseInt(rest.subarray(at, eol).toString('latin1'), 16);
            if (n === 0) return Buffer.concat(parts);
            parts.push(rest.subarray(eol + 2, eol + 2 + n));
            at = eol + 2 + n + 2;
          }
        }
      }
    };
    const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    const want = digest(bigBody);
    expect(digest(await bodyOf('/big'))).toBe(want);
    expect(digest(await bodyOf('/big/chunked'))).toBe(want);
    expect(digest(await bodyOf('/big'))).toBe(want);
    s.destroy();
  }, 30_000);

  it('carries 4 MiB through a tcp_proxy listener intact both ways and passes the half-close on', async () => {
    const data = randomBytes(4 * 1024 * 1024 + 7);
    const got = await new Promise<Buffer>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: tcpPort, allowHalfOpen: true }, () => s.end(data));
      const parts: Buffer[] = [];
      s.on('data', (c: Buffer) => parts.push(c));
      s.on('end', () => resolve(Buffer.concat(parts)));
      s.on('error', reject);
    });
    expect(got.length).toBe(data.length);
    expect(createHash('sha256').update(got).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    await until('the closed TCP connection in istio_tcp_connections_closed_total', async () =>
      /istio_tcp_connections_closed_total\{[^}]*request_protocol="tcp"[^}]*\} 1/.test(
        await wp.metrics.registry.getSingleMetricAsString('istio_tcp_connections_closed_total'),
      ),
    );
    const sent = await wp.metrics.registry.getSingleMetricAsString('istio_tcp_sent_bytes_total');
    expect(sent).toContain(`} ${data.length}`);
  });

  it('route timeout covers the body: a response still streaming at the deadline is cut and flagged UT', async () => {
    const t0 = Date.now();
    const r = await get(httpPort, '/slow-body');
    expect(r.status).toBe(200); // the headers were on time
    expect(r.body).toBe('first part;');
    expect(r.aborted).toBe(true);
    expect(Date.now() - t0).toBeLessThan(1200);
    await until('a UT 200 in istio_requests_total', async () =>
      /response_code="200"[^}]*response_flags="UT"|response_flags="UT"[^}]*response_code="200"/.test(
        await wp.metrics.registry.getSingleMetricAsString('istio_requests_total'),
      ),
    );
    // timeout 0 (no timeout): the same backend completes
    const ok = await get(httpPort, '/patient');
    expect([ok.status, ok.body, ok.aborted]).toEqual([200, 'first part;second part', false]);
  });

  it('an HTTP/1.1 client that half-closes while its request is upstream has gone away: the upstream request is cut, DC counted', async () => {
    const c = connect({ host: '127.0.0.1', port: httpPort, allowHalfOpen: true });
    const closed = new Promise<string>((resolve) => {
      let got = '';
      c.on('data', (b: Buffer) => (got += b.toString('latin1')));
      c.on('error', () => undefined);
      c.on('close', () => resolve(got));
    });
    c.write('GET /slow-head HTTP/1.1\r\nhost: web\r\n\r\n');
    await until('the request at the backend', () => slowHead.seen.length === 1);
    const t0 = Date.now();
    c.end(); // FIN: nothing more from this client
    expect(await closed).toBe(''); // closed by the waypoint, no response
    await until('the backend request cut', () => slowHeadEnds.length === 1);
    expect(slowHeadEnds).toEqual(['cut']);
    expect(Date.now() - t0).toBeLessThan(1500); // not the backend's 3 s, nor the route's 15 s
    await until('a DC in istio_requests_total', async () =>
      /response_code="0"[^}]*response_flags="DC"/.test(await wp.metrics.registry.getSingleMetricAsString('istio_requests_total')),
    );
    // the waypoint still serves this route to a client that waits
    const t1 = Date.now();
    const ok = await get(httpPort, '/slow-head');
    expect([ok.status, ok.body]).toEqual([200, 'late']);
    expect(Date.now() - t1).toBeGreaterThanOrEqual(2900);
  });

  it('honours endpoint weights with round robin (3:1, exact over 40 requests)', async () => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 40; i++) {
      const r = await get(httpPort, '/weighted');
      counts[r.body] = (counts[r.body] ?? 0) + 1;
    }
    expect(counts).toEqual({ heavy: 30, light: 10 });
  });
});
