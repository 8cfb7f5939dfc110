// A pooled upstream HTTP/1.1 connection that the backend closes just as the waypoint reuses it (the
// backend's idle close crossing the next request; this backend announces no keep-alive timeout):
// an idempotent request without a body is sent once more on a new connection and served, and
// counted in nodemesh_waypoint_upstream_resent_total; a POST is not sent again (503, flag UC).
import { createServer, type AddressInfo, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Waypoint } from '../../waypoint/waypoint';
import { ControlPlane, freePort, startPlainWaypoint } from './fixture';

describe('waypoint: a reused upstream connection closed before any response byte', () => {
  const cp = new ControlPlane();
  let wp: Waypoint;
  let port: number;
  let srv: Server;
  const seen: string[] = [];

  beforeAll(async () => {
    await cp.start();
    // Answers the first request of every connection (keep-alive) and closes the connection, without
    // a byte, when the second arrives.
    let connections = 0;
    srv = createServer((s) => {
      const id = ++connections;
      let n = 0;
      s.on('data', (d: Buffer) => {
        const line = d.toString('latin1').split('\r\n', 1)[0]!;
        seen.push(`${id}:${line.split(' ', 2).join(' ')}`);
        if (n++ > 0) return void s.destroy();
        s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      });
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    port = await freePort();
    cp.serveAll('http', port, 'web', [(srv.address() as AddressInfo).port]);
    wp = await startPlainWaypoint(cp.address, [port]);
  }, 20_000);
  afterAll(async () => {
    await wp?.stop();
    await cp.stop();
    srv?.close();
  });

  const resent = async (): Promise<number> =>
    Number(
      /nodemesh_waypoint_upstream_resent_total\{cluster="web"\} (\d+)/.exec(
        await wp.metrics.registry.getSingleMetricAsString('nodemesh_waypoint_upstream_resent_total'),
      )?.[1] ?? 0,
    );
  const ask = async (method: string, path: string): Promise<[number, string]> => {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers: { host: 'web' }, body: method === 'POST' ? 'x' : undefined });
    return [r.status, await r.text()];
  };

  it('serves a GET that crossed the close from a new connection, counted; a POST gets 503 UC', async () => {
    expect(await ask('GET', '/1')).toEqual([200, 'ok']);
    expect(await ask('GET', '/2')).toEqual([200, 'ok']);
    expect(seen).toEqual(['1:GET /1', '1:GET /2', '2:GET /2']);
    expect(await resent()).toBe(1);
    const [status, body] = await ask('POST', '/3');
    expect(status).toBe(503);
    expect(body).toMatch(/upstream/);
    expect(seen.at(-1)).toBe('2:POST /3');
    expect(await resent()).toBe(1);
  });
});
