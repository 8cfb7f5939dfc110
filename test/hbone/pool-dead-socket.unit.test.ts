// The client pool's dead sessions: a session the liveness check kills while one of its writes is
// stuck (the peer stopped reading, or vanished) must take its TCP socket with it at once, and leave
// the pool; node:http2 alone destroys it only once that write completes, when TCP gives up minutes
// later, and until then the socket, its buffers and the pool's entry stay.
import type { ClientHttp2Stream } from 'node:http2';
import { connect as tcpConnect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, quietLogger, startMesh } from './fixture';
import { relay } from './relay';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

describe('HBONE client pool: a dead session goes with its socket', () => {
  it('a session killed by the liveness check while its writes are stuck closes its TCP socket at once and leaves the pool', async () => {
    const mesh = await startMesh({
      // the app behind the tunnels reads nothing: the client's uploads fill every window
      upstream: (s: Socket) => s.pause(),
      client: { keepaliveIntervalMs: 200, pingTimeoutMs: 300, logger: quietLogger },
      server: { keepaliveIntervalMs: 0 },
    });
    cleanups.push(() => mesh.close());
    const r = await relay(Number(mesh.destination.split(':')[1]));
    cleanups.push(() => r.close());
    let dialled: Socket | undefined;
    const dial = (host: string, port: number): Promise<Socket> =>
      new Promise((resolve, reject) => {
        const s = tcpConnect({ host, port }, () => resolve(s));
        dialled = s;
        s.once('error', reject);
      });
    const tunnels: ClientHttp2Stream[] = await Promise.all(
      Array.from({ length: 8 }, () => mesh.client.open(mesh.openOptions({ destination: `127.0.0.1:${r.port}`, dial, sourceAddress: 'stuck' }))),
    );
    const socket = dialled as Socket;
    let socketClosed = false;
    socket.once('close', () => (socketClosed = true));
    r.freeze();
    // more than the connection window (16 MiB) plus what the kernel buffers hold: a write stays pending
    const chunk = Buffer.alloc(1 << 20, 1);
    for (const t of tunnels) {
      t.on('error', () => undefined);
      for (let i = 0; i < 6; i++) t.write(chunk);
    }
    const t0 = Date.now();
    expect(await eventually(() => tunnels.every((t) => t.destroyed), 3_000)).toBe(true);
    // the PING went unanswered: the session is destroyed, and its socket with it
    expect(await eventually(() => socketClosed, 2_000)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(await eventually(() => mesh.client.connectionCount() === 0, 1_000)).toBe(true);
  }, 15_000);
});
