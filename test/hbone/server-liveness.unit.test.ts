// Liveness at the HBONE server. A client that vanishes without a FIN or RST (a node gone, a netns
// removed, a path black-holed) must not leave anything behind on the server: the connection is
// PINGed once it has been silent, and without an answer it is destroyed with its streams (the
// upstreams end, so the node proxy's records go), counted.
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { allow, DEFAULT_SERVER_KEEPALIVE_INTERVAL_MS, SERVER_KEEPALIVE_ENV, serverKeepaliveFromEnv } from '../../common/hbone/server';
import { eventually, quietLogger, roundTrip, startMesh } from './fixture';
import { relay } from './relay';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('HBONE server liveness', () => {
  it('a client that goes dark (no FIN, no RST) loses its connection and streams at the server after silence + PING timeout, counted; its upstreams are released', async () => {
    const timeouts: string[] = [];
    let upstreams = 0;
    let upstreamsClosed = 0;
    // what the node proxy's handler does: a record (connection table, policy guard) per allowed
    // stream, removed in onClose
    let records = 0;
    const mesh = await startMesh({
      decide: async (_r, connect) => {
        const d = await connect();
        if (!d.allow) return d;
        records++;
        return allow(d.upstream, () => records--);
      },
      upstream: (s: Socket) => {
        upstreams++;
        s.once('close', () => upstreamsClosed++);
        s.pipe(s);
      },
      // the client neither PINGs nor probes: only the server's own check can notice
      client: { keepaliveIntervalMs: 0, openProbeAfterMs: 0, logger: quietLogger },
      server: { keepaliveIntervalMs: 200, pingTimeoutMs: 300, onTimeout: (k) => timeouts.push(k) },
    });
    cleanups.push(() => mesh.close());
    const r = await relay(Number(mesh.destination.split(':')[1]));
    cleanups.push(() => r.close());
    const opts = () => mesh.openOptions({ destination: `127.0.0.1:${r.port}` });

    // two tunnels stay open (idle, as a long-lived database connection is), one has finished
    const held = await Promise.all([mesh.client.open(opts()), mesh.client.open(opts())]);
    for (const h of held) h.on('error', () => undefined);
    expect((await roundTrip(await mesh.client.open(opts()), Buffer.from('x'))).toString()).toBe('x');
    expect(await eventually(() => mesh.server.stats().streamsActive === 2, 1_000)).toBe(true);
    expect(records).toBe(2);
    // quiet but alive: the server PINGs the silent connection and the client answers
    await sleep(1_200);
    expect(mesh.server.stats().connectionsActive).toBe(1);
    expect(mesh.server.stats().pingTimeouts).toBe(0);

    r.blackhole();
    const t0 = Date.now();
    expect(await eventually(() => mesh.server.stats().connectionsActive === 0, 3_000)).toBe(true);
    // at most one silent interval, a PING timeout (re-armed once if a byte was in flight), scheduling
    expect(Date.now() - t0).toBeLessThan(1_500);
    const stats = mesh.server.stats();
    expect(stats.pingTimeouts).toBe(1);
    expect(stats.streamsActive).toBe(0);
    expect(timeouts).toEqual(['ping']);
    expect(await eventually(() => upstreamsClosed === upstreams && upstreams === 3, 1_000)).toBe(true);
    expect(records).toBe(0);
  });

  it('a connection that keeps delivering bytes, or answers its PINGs, is never cut', async () => {
    const mesh = await startMesh({
      client: { keepaliveIntervalMs: 0, openProbeAfterMs: 0, logger: quietLogger },
      server: { keepaliveIntervalMs: 100, pingTimeoutMs: 200 },
    });
    cleanups.push(() => mesh.close());
    const upload = await mesh.client.open(mesh.openOptions());
    const idle = await mesh.client.open(mesh.openOptions());
    let echoed = 0;
    upload.on('data', (d: Buffer) => (echoed += d.length));
    const tick = setInterval(() => upload.write('u'), 30);
    cleanups.push(() => clearInterval(tick));
    await sleep(1_500); // many silent intervals for a quiet connection, none for this one
    expect(echoed).toBeGreaterThan(10);
    expect(mesh.server.stats().pingTimeouts).toBe(0);
    expect(mesh.server.stats().connectionsActive).toBe(1);
    expect((await roundTrip(idle, Buffer.from('still here'))).toString()).toBe('still here');
  });

  it('keepaliveIntervalMs 0 turns the server check off; a bad value is refused with its name', async () => {
    const mesh = await startMesh({
      client: { keepaliveIntervalMs: 0, openProbeAfterMs: 0, logger: quietLogger },
      server: { keepaliveIntervalMs: 0, pingTimeoutMs: 100 },
    });
    cleanups.push(() => mesh.close());
    const r = await relay(Number(mesh.destination.split(':')[1]));
    cleanups.push(() => r.close());
    const held = await mesh.client.open(mesh.openOptions({ destination: `127.0.0.1:${r.port}` }));
    held.on('error', () => undefined);
    r.blackhole();
    await sleep(800);
    expect(mesh.server.stats().connectionsActive).toBe(1);
    await expect(startMesh({ server: { pingTimeoutMs: 0 } })).rejects.toThrow(/pingTimeoutMs must be a number of milliseconds ≥ 1, got 0/);
  });

  it('the node proxy reads the interval from NODEMESH_HBONE_SERVER_KEEPALIVE_INTERVAL_MS: the default where unset, 0 turns it off, anything else is refused by name', () => {
    expect(serverKeepaliveFromEnv({})).toBe(DEFAULT_SERVER_KEEPALIVE_INTERVAL_MS);
    expect(serverKeepaliveFromEnv({ [SERVER_KEEPALIVE_ENV]: '' })).toBe(DEFAULT_SERVER_KEEPALIVE_INTERVAL_MS);
    expect(serverKeepaliveFromEnv({ [SERVER_KEEPALIVE_ENV]: '0' })).toBe(0);
    expect(serverKeepaliveFromEnv({ [SERVER_KEEPALIVE_ENV]: '45000' })).toBe(45_000);
    for (const bad of ['-1', '2.5', '20s']) {
      expect(() => serverKeepaliveFromEnv({ [SERVER_KEEPALIVE_ENV]: bad })).toThrow(
        `${SERVER_KEEPALIVE_ENV}=${bad}: expected a whole number of milliseconds ≥ 0`,
      );
    }
  });
});
