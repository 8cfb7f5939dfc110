// The client pool: many streams share few connections, the server's stream limit is respected,
// and connections come back after GOAWAY and go away when idle.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { ClientHttp2Stream } from 'node:http2';
import { connect as tcpConnect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TunnelConnectError } from '../../common/hbone/errors';
import { HboneServer, allow } from '../../common/hbone/server';
import { connectUpstream } from '../../common/hbone/upstream';
import { eventually, quietLogger, roundTrip, sha256, startMesh, type Mesh } from './fixture';

const meshes: Mesh[] = [];
afterEach(async () => {
  while (meshes.length) await meshes.pop()?.close();
});

/** A TLS server (h2 by ALPN) that prints its port and never sends anything after the handshake. */
const SILENT_TLS_SERVER = `
const s = require('node:tls').createServer({ cert: process.env.CERT, key: process.env.KEY, ALPNProtocols: ['h2'] }, (c) => c.on('error', () => {}));
s.listen(0, '127.0.0.1', () => process.stdout.write(String(s.address().port)));
process.stdin.resume();`;

describe('HBONE connection pool', () => {
  it('carries 300 concurrent streams on 3 connections when the server allows 100 streams each', async () => {
    const mesh = await startMesh({ server: { maxConcurrentStreams: 100 } });
    meshes.push(mesh);
    const N = 300;
    const streams = await Promise.all(Array.from({ length: N }, () => mesh.client.open(mesh.openOptions())));
    // All 300 are open at the same time here.
    expect(mesh.server.stats().streamsActive).toBe(N);
    expect(mesh.client.connectionCount()).toBe(3);
    expect(mesh.server.stats().connectionsAccepted).toBe(3);
    const perSession = new Map<unknown, number>();
    for (const s of streams) perSession.set(s.session, (perSession.get(s.session) ?? 0) + 1);
    expect([...perSession.values()].sort()).toEqual([100, 100, 100]);

    const payloads = streams.map(() => randomBytes(16 * 1024));
    const backs = await Promise.all(streams.map((s, i) => roundTrip(s, payloads[i] as Buffer)));
    backs.forEach((b, i) => expect(sha256(b)).toBe(sha256(payloads[i] as Buffer)));
  });

  it('uses one connection for sequential streams and a separate one per expected identity / source', async () => {
    const mesh = await startMesh();
    meshes.push(mesh);
    for (let i = 0; i < 20; i++) {
      const s = await mesh.client.open(mesh.openOptions());
      await roundTrip(s, Buffer.from(`n${i}`));
    }
    expect(mesh.client.connectionCount()).toBe(1);
    const other = await mesh.ca.issue('ns-c', 'sa-other-client');
    const s = await mesh.client.open(mesh.openOptions({ source: { certChain: other.certChain, key: other.key } }));
    await roundTrip(s, Buffer.from('x'));
    expect(mesh.client.connectionCount()).toBe(2);
    expect(mesh.requests.at(-1)?.peerSpiffeId).toBe(other.spiffeId);
  });

  it('keeps using a connection when equal credentials arrive in new objects', async () => {
    const mesh = await startMesh();
    meshes.push(mesh);
    for (let i = 0; i < 5; i++) {
      // a certificate manager may rebuild these on every call
      const o = mesh.openOptions({
        source: { certChain: `${mesh.clientCreds.certChain}`, key: Buffer.from(mesh.clientCreds.key) },
        trustBundle: { ...mesh.ca.bundle },
      });
      await roundTrip(await mesh.client.open(o), Buffer.from('same'));
    }
    expect(mesh.server.stats().connectionsAccepted).toBe(1);
  });

  it('closes idle connections after the idle timeout', async () => {
    const mesh = await startMesh({ client: { idleTimeoutMs: 150 } });
    meshes.push(mesh);
    await roundTrip(await mesh.client.open(mesh.openOptions()), Buffer.from('a'));
    expect(mesh.client.connectionCount()).toBe(1);
    const t0 = Date.now();
    await eventually(() => mesh.client.connectionCount() === 0 && mesh.server.stats().connectionsActive === 0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100); // not before the idle timeout
    expect(mesh.client.connectionCount()).toBe(0);
    expect(mesh.server.stats().connectionsActive).toBe(0);
    // and a new tunnel simply reconnects
    expect((await roundTrip(await mesh.client.open(mesh.openOptions()), Buffer.from('b'))).toString()).toBe('b');
  });

  it('finishes open streams after GOAWAY and reconnects for new ones', async () => {
    const mesh = await startMesh();
    meshes.push(mesh);
    const port = Number(mesh.destination.split(':')[1]);
    const inFlight: ClientHttp2Stream = await mesh.client.open(mesh.openOptions());
    inFlight.write('before ');
    const closing = mesh.server.close(5_000); // GOAWAY to the client, stop listening
    // A replacement server on the same port, as after a node proxy restart.
    const replacement = new HboneServer({
      credentials: { certChain: mesh.serverCreds.certChain, key: mesh.serverCreds.key, trustBundle: mesh.ca.bundle },
      logger: quietLogger,
      handler: async (r) => allow(await connectUpstream(r.target)),
    });
    try {
      await new Promise((r) => setTimeout(r, 50));
      await replacement.listen({ host: '127.0.0.1', port });
      const fresh = await mesh.client.open(mesh.openOptions());
      expect((await roundTrip(fresh, Buffer.from('after'))).toString()).toBe('after');
      expect(replacement.stats().connectionsAccepted).toBe(1);
      // The stream on the old connection still works to the end.
      expect((await roundTrip(inFlight, Buffer.from('goaway'))).toString()).toBe('before goaway');
      await closing;
    } finally {
      await replacement.close(100);
    }
  });

  it('a connection whose handshake outlasts the connect timeout fails its tunnel only: the handshake ending later throws nothing', async () => {
    // 1 s, not less: the client's last open below must fit a real handshake in it on a loaded machine
    const mesh = await startMesh({ client: { connectTimeoutMs: 1_000 } });
    meshes.push(mesh);
    // A TLS server with the mesh server's certificate in another process (it answers while this
    // process is busy), which never sends HTTP/2 SETTINGS: the pool gives up after 1 s.
    const peer = spawn(process.execPath, ['-e', SILENT_TLS_SERVER], {
      env: { ...process.env, CERT: mesh.serverCreds.certChain, KEY: mesh.serverCreds.key },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const thrown: Error[] = [];
    const onUncaught = (err: Error): void => {
      thrown.push(err);
    };
    process.on('uncaughtException', onUncaught);
    try {
      const port = await new Promise<number>((resolve) => peer.stdout.once('data', (d: Buffer) => resolve(Number(d.toString()))));
      // This process is busy (a loaded machine) from just after the ClientHello until past the
      // pool's limit: then, in one turn of the event loop, the pool destroys the session and the
      // server's handshake answer, waiting in the socket, completes the handshake.
      const busyDial = (): Promise<Socket> =>
        new Promise((resolve, reject) => {
          const s = tcpConnect({ host: '127.0.0.1', port }, () => {
            resolve(s);
            // right after this turn, which sends the ClientHello
            setImmediate(() => {
              const until = Date.now() + 1_400;
              while (Date.now() < until);
            });
          });
          s.once('error', reject);
        });
      const err = await mesh.client.open(mesh.openOptions({ dial: busyDial, sourceAddress: '10.200.1.7' })).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(TunnelConnectError);
      expect((err as Error).message).toContain('no HTTP/2 SETTINGS from the server within 1000 ms');
      await new Promise((r) => setTimeout(r, 200));
      expect(thrown).toEqual([]);
      // and the client still opens tunnels
      expect((await roundTrip(await mesh.client.open(mesh.openOptions()), Buffer.from('after'))).toString()).toBe('after');
    } finally {
      process.off('uncaughtException', onUncaught);
      peer.kill();
    }
  });

  it("dials new connections with the caller's dialer, one pool per source address", async () => {
    const mesh = await startMesh();
    meshes.push(mesh);
    const dialled: string[] = [];
    const dial = (host: string, port: number): Promise<Socket> =>
      new Promise((resolve, reject) => {
        dialled.push(`${host}:${port}`);
        const s = tcpConnect({ host, port }, () => resolve(s));
        s.once('error', reject);
      });
    for (const sourceAddress of ['10.200.1.4', '10.200.1.4', '10.200.1.5']) {
      const s = await mesh.client.open(mesh.openOptions({ dial, sourceAddress }));
      expect((await roundTrip(s, Buffer.from(sourceAddress))).toString()).toBe(sourceAddress);
    }
    expect(dialled).toEqual([mesh.destination, mesh.destination]);
    expect(mesh.client.connectionCount()).toBe(2);

    const failing = (): Promise<Socket> => Promise.reject(Object.assign(new Error('connect ECONNREFUSED in netns'), { code: 'ECONNREFUSED' }));
    const err = await mesh.client.open(mesh.openOptions({ dial: failing, sourceAddress: '10.200.1.6' })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TunnelConnectError);
    expect((err as Error).message).toContain('ECONNREFUSED in netns');
    expect(mesh.client.connectionCount()).toBe(2); // the failed dial left nothing in the pool
  });
});
