// Control plane restart under traffic, and OTLP span export to a real HTTP receiver.
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Waypoint } from '../../waypoint/waypoint';
import { until } from '../support/until';
import { backend, ControlPlane, freePort, startPlainWaypoint, type Backend } from './fixture';

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port, path, headers: { host: 'web', ...headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    r.on('error', reject);
    r.end();
  });
}

describe('waypoint resilience and tracing', () => {
  let cp = new ControlPlane();
  let wp: Waypoint;
  let be: Backend;
  let port: number;
  const spans: unknown[] = [];
  const collector = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces') spans.push(JSON.parse(Buffer.concat(parts).toString()));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });

  beforeAll(async () => {
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
    await cp.start();
    be = await backend('a');
    port = await freePort();
    cp.listener('l', port, 'r');
    cp.cluster('a', [be.port]);
    cp.routes({
      name: 'r',
      virtualHosts: [
        {
          name: 'web',
          domains: ['*'],
          routes: [
            {
              match: { pathSpecifier: { $case: 'prefix', value: '/' } },
              action: { $case: 'route', value: { clusterSpecifier: { $case: 'cluster', value: 'a' } } },
            },
          ],
        },
      ],
    });
    wp = await startPlainWaypoint(cp.address, [port], { otlpEndpoint: `http://127.0.0.1:${(collector.address() as AddressInfo).port}` });
  }, 20_000);

  afterAll(async () => {
    await wp?.stop();
    await cp.stop();
    await be?.close();
    collector.close();
  });

  it('loses no request while the control plane restarts, and resyncs', async () => {
    const statuses: number[] = [];
    let stop = false;
    const load = (async () => {
      for (let i = 0; i < 2000 && !stop; i++) statuses.push(await get(port, '/'));
    })();
    await new Promise((r) => setTimeout(r, 100));
    const cpPort = cp.port;
    await cp.stop();
    await until('xDS to disconnect', () => !wp.xds.status().connected);
    await new Promise((r) => setTimeout(r, 300));
    const next = new ControlPlane();
    for (const t of next.cache.typeUrls) next.cache.replace(t, cp.cache.resources(t)!);
    cp = next;
    await cp.start(cpPort);
    await until('xDS to reconnect', () => wp.xds.status().connected, 15_000);
    stop = true;
    await load;
    expect(statuses.length).toBeGreaterThan(10);
    expect(statuses.every((s) => s === 200)).toBe(true);
    // The restarted control plane serves a new route; the waypoint applies it.
    cp.routes({
      name: 'r',
      virtualHosts: [
        {
          name: 'web',
          domains: ['*'],
          routes: [{ match: { pathSpecifier: { $case: 'prefix', value: '/' } }, action: { $case: 'directResponse', value: { status: 204 } } }],
        },
      ],
    });
    await until('the updated route (204)', async () => (await get(port, '/')) === 204);
  }, 30_000);

  it('propagates traceparent and exports a span per request over OTLP/HTTP JSON', async () => {
    cp.routes({
      name: 'r',
      virtualHosts: [
        {
          name: 'web',
          domains: ['*'],
          routes: [
            {
              match: { pathSpecifier: { $case: 'prefix', value: '/' } },
              action: { $case: 'route', value: { clusterSpecifier: { $case: 'cluster', value: 'a' } } },
            },
          ],
        },
      ],
    });
    await until('the restored route (200)', async () => (await get(port, '/')) === 200);
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    expect(await get(port, '/traced', { traceparent: `00-${traceId}-00f067aa0ba902b7-01` })).toBe(200);
    const seen = be.seen[be.seen.length - 1]!;
    expect(seen.headers.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    expect(seen.headers.traceparent).not.toContain('00f067aa0ba902b7');
    await until('the span with the trace id', () => JSON.stringify(spans).includes(traceId), 5000);
    const all = JSON.stringify(spans);
    expect(all).toContain('"parentSpanId":"00f067aa0ba902b7"');
    expect(all).toContain('"service.name"');
  }, 15_000);
});
