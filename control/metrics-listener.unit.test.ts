// The control plane's --metrics-port listener holds nothing for a slow or idle peer: a connection
// that sends nothing or only part of its headers gets 408 after the headers timeout, a kept-alive
// connection is closed when idle, both counted in nodemesh_listener_timeouts_total{listener="metrics"};
// oversized headers get 431; connections beyond the cap are dropped; only GET/HEAD /metrics answer.
import { connect, type Socket } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { startMetricsListener, type MetricsListener } from './metrics-listener';

function raw(port: number, send?: string): { socket: Socket; done: Promise<{ text: string; ms: number }> } {
  const t0 = performance.now();
  const socket = connect(port, '127.0.0.1', () => send && socket.write(send));
  let text = '';
  socket.on('data', (d) => (text += d.toString('latin1')));
  socket.on('error', () => undefined);
  return { socket, done: new Promise((resolve) => socket.once('close', () => resolve({ text, ms: performance.now() - t0 }))) };
}

const series = async (registry: Registry, kind: string): Promise<number> =>
  Number(new RegExp(`listener="metrics",kind="${kind}"\\} (\\d+)`).exec(await registry.metrics())?.[1] ?? 0);

describe('metrics listener limits', () => {
  let l: MetricsListener | undefined;
  afterEach(async () => {
    await l?.close();
    l = undefined;
  });

  it('answers 408 to a peer that sends nothing or half its headers, within the headers timeout, and counts it', async () => {
    const registry = new Registry();
    l = await startMetricsListener(registry, { host: '127.0.0.1', port: 0, limits: { headersTimeoutMs: 400, requestTimeoutMs: 1_000, checkIntervalMs: 100 } });
    const silent = raw(l.port);
    const partial = raw(l.port, 'GET /metrics HTTP/1.1\r\nhost: x\r\n');
    for (const c of [await silent.done, await partial.done]) {
      expect(c.text).toMatch(/^HTTP\/1.1 408 /);
      expect(c.ms).toBeLessThan(3_000);
    }
    expect(await series(registry, 'request')).toBe(2);
  });

  it('closes a kept-alive connection idle past the keep-alive timeout and counts it', async () => {
    const registry = new Registry();
    l = await startMetricsListener(registry, { host: '127.0.0.1', port: 0, limits: { keepAliveTimeoutMs: 300 } });
    const c = raw(l.port, 'GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n');
    const { text, ms } = await c.done;
    expect(text).toMatch(/^HTTP\/1.1 200 /);
    expect(ms).toBeLessThan(3_000);
    expect(await series(registry, 'idle')).toBe(1);
  });

  it('refuses headers over 16 KiB with 431, other paths with 404 and other methods with 405', async () => {
    l = await startMetricsListener(new Registry(), { host: '127.0.0.1', port: 0 });
    const big = raw(l.port, `GET /metrics HTTP/1.1\r\nhost: x\r\nx-fill: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect((await big.done).text).toMatch(/^HTTP\/1.1 431 /);
    expect((await fetch(`http://127.0.0.1:${l.port}/v1/workloads`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${l.port}/metrics`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`http://127.0.0.1:${l.port}/metrics`)).status).toBe(200);
  });

  it('drops connections beyond its cap', async () => {
    l = await startMetricsListener(new Registry(), { host: '127.0.0.1', port: 0, limits: { maxConnections: 4 } });
    const held = Array.from({ length: 4 }, () => raw(l!.port));
    await new Promise((r) => setTimeout(r, 200));
    const extra = raw(l.port, 'GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n');
    const got = await extra.done;
    expect(got.text).toBe(''); // closed by the server without an answer
    for (const h of held) h.socket.destroy();
  });
});
