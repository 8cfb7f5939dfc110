// Closing an HBONE server's connections (a workload unenrolled) while a peer has stopped reading
// them: node:http2 destroys a session only once its pending socket write completes, and with the
// peer not reading that write stays pending as long as TCP retries. The grace period must still
// bound the close: closeListener resolves and the tunnel's upstream is released.
import { createServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, startMesh } from './fixture';
import { relay } from './relay';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

describe('closing HBONE connections whose peer stopped reading', () => {
  it('closeListener resolves within its grace period and releases the tunnels’ upstreams', async () => {
    let upstreamsClosed = 0;
    let upstreams = 0;
    // the app behind the tunnels sends without end (until its connection is closed)
    const mesh = await startMesh({
      upstream: (s) => {
        upstreams++;
        s.once('close', () => upstreamsClosed++);
        const chunk = Buffer.alloc(256 * 1024, 7);
        const pump = (): void => {
          while (!s.destroyed && s.write(chunk));
          if (!s.destroyed) s.once('drain', pump);
        };
        pump();
      },
    });
    cleanups.push(() => mesh.close());
    const listener = createServer({ noDelay: true }, (socket) => mesh.server.serveConnection(socket, 'workload-a'));
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => listener.close(() => r())));
    const r = await relay((listener.address() as AddressInfo).port);
    cleanups.push(() => r.close());

    let received = 0;
    const tunnels = await Promise.all(
      [0, 1, 2, 3].map(() => mesh.client.open(mesh.openOptions({ destination: `127.0.0.1:${r.port}`, sourceAddress: 'stalled' }))),
    );
    for (const t of tunnels) {
      t.on('error', () => undefined);
      t.on('data', (c: Buffer) => {
        received += c.length;
      });
    }
    expect(await eventually(() => received > 1 << 20, 5_000)).toBe(true);
    r.freeze();
    // the server's writes back up behind the peer that no longer reads
    await new Promise((res) => setTimeout(res, 1_000));
    const t0 = performance.now();
    await mesh.server.closeListener('workload-a', 200);
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect(await eventually(() => upstreamsClosed === upstreams, 2_000)).toBe(true);
    expect(mesh.server.stats().connectionsActive).toBe(0);
  }, 20_000);
});
