// The native engine's raw-socket API (common/hbone/raw-socket.ts, docs/hbone.md "Raw sockets"): a
// captured socket, a dialled HBONE connection and an allowed upstream handed over as bare fds, with
// no net.Socket around them; and streams to one destination spread over one connection per
// engine thread (NativeHboneClient connectionsPerKey).
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawSocket } from '../../common/hbone/raw-socket';
import { allow } from '../../common/hbone/server';
import { connectUpstream } from '../../common/hbone/upstream';
import { nativeHboneActive, nativeHboneAvailable } from '../../native/hbone';
import { NativeHboneClient } from '../../native/hbone-client';
import { takeOver } from '../../native/splice';
import { echo, eventually, quietLogger, sha256, startMesh, type Mesh } from './fixture';
import { capturedPair, nativeServer, nativeTunnel, readAll, sendAll } from './native-fixture';

const run = nativeHboneAvailable() ? describe : describe.skip;

/** A connected socket's fd with no net.Socket left around it (what the addon's connect gives). */
function bare(s: Socket) {
  const { fd, prefix } = takeOver(s);
  return rawSocket(fd, prefix);
}

function connected(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

run('native HBONE engine: raw fds handed over', () => {
  let s: Awaited<ReturnType<typeof nativeServer>>;
  let client: NativeHboneClient;
  beforeAll(async () => {
    // the server's handler allows with the app's connection as a bare fd
    s = await nativeServer(echo, async () => allow(bare(await connectUpstream({ host: '127.0.0.1', port: s.mesh.upstreamPort, family: 4 }))));
    client = new NativeHboneClient({ logger: quietLogger });
  });
  afterAll(async () => {
    client?.close(0);
    await s?.close();
  });

  it('carries 4 MiB both ways intact: captured socket, HBONE connection and upstream all as fds', async () => {
    const pair = await capturedPair();
    const data = randomBytes(4 << 20);
    let ended!: (r: { clean: boolean; bytesOut: number; bytesIn: number }) => void;
    const end = new Promise<{ clean: boolean; bytesOut: number; bytesIn: number }>((r) => (ended = r));
    const o = { ...s.openOptions(), dial: async (_host: string, port: number) => bare(await connected(port)) };
    await client.tunnel(o, bare(pair.captured), { end: ended });
    const back = readAll(pair.app);
    sendAll(pair.app, data);
    const got = await back;
    expect(got.error).toBeUndefined();
    expect(sha256(got.data)).toBe(sha256(data));
    expect(await end).toMatchObject({ clean: true, bytesOut: data.length, bytesIn: data.length });
    expect(s.server.stats().bytesToUpstream).toBeGreaterThanOrEqual(data.length);
  });

  it('reads bytes the socket had read before it was handed over first', async () => {
    const pair = await capturedPair();
    pair.captured.resume();
    const early = new Promise<Buffer>((r) => pair.captured.once('data', (c: Buffer) => r(c)));
    pair.app.write('early ');
    const first = await early;
    pair.captured.pause();
    const { fd } = takeOver(pair.captured);
    const back = readAll(pair.app);
    await client.tunnel(s.openOptions(), rawSocket(fd, first), { end: () => undefined });
    pair.app.end('then late');
    expect((await back).data.toString()).toBe('early then late');
  });

  it('reports a cancelled stream on the handler signal, read after the cancel', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let aborted: boolean | undefined;
    const t = await nativeServer(echo, async (r, c) => {
      await held;
      aborted = r.signal.aborted;
      return c();
    });
    try {
      const tun = await nativeTunnel(client, t);
      const ended = tun.ended;
      expect(await eventually(() => t.requests.length === 1, 5000)).toBe(true);
      tun.app.resetAndDestroy(); // the client engine resets its stream: the server's request is cancelled
      await ended;
      await new Promise((r) => setTimeout(r, 100));
      release();
      expect(await eventually(() => aborted !== undefined, 5000)).toBe(true);
      expect(aborted).toBe(true);
    } finally {
      await t.close();
    }
  });
});

run('node:http2 HBONE server: a raw fd upstream', () => {
  let mesh: Mesh;
  beforeAll(async () => {
    mesh = await startMesh({
      decide: async () => allow(bare(await connectUpstream({ host: '127.0.0.1', port: mesh.upstreamPort, family: 4 }))),
    });
  });
  afterAll(async () => {
    await mesh?.close();
  });

  it('is wrapped in a socket of its own and carries the bytes', async () => {
    const data = randomBytes(1 << 20);
    const stream = await mesh.client.open(mesh.openOptions());
    const back = new Promise<Buffer>((resolve, reject) => {
      const parts: Buffer[] = [];
      stream.on('data', (c: Buffer) => parts.push(c));
      stream.once('end', () => resolve(Buffer.concat(parts)));
      stream.once('error', reject);
    });
    stream.end(data);
    expect(sha256(await back)).toBe(sha256(data));
  });
});

run('native HBONE client: streams spread over one connection per engine thread', () => {
  let s: Awaited<ReturnType<typeof nativeServer>>;
  beforeAll(async () => {
    s = await nativeServer(echo);
  });
  afterAll(async () => {
    await s?.close();
  });

  async function concurrent(client: NativeHboneClient, n: number): Promise<void> {
    const tunnels = await Promise.all(Array.from({ length: n }, () => nativeTunnel(client, s)));
    const data = randomBytes(256 << 10);
    const backs = tunnels.map((t) => readAll(t.app));
    for (const t of tunnels) sendAll(t.app, data);
    for (const b of await Promise.all(backs)) expect(sha256(b.data)).toBe(sha256(data));
    for (const t of tunnels) expect(await t.ended).toMatchObject({ clean: true });
  }

  /** Runs `rounds` of `n` concurrent tunnels on a client of the given spread; its connections after. */
  async function connectionsAfter(spread: number, rounds: number, n: number): Promise<number> {
    const client = new NativeHboneClient({ logger: quietLogger, connectionsPerKey: spread });
    try {
      for (let i = 0; i < rounds; i++) await concurrent(client, n);
      return client.connectionCount();
    } finally {
      client.close(0);
    }
  }

  it('opens a second connection while the first carries a stream, and no more than the spread', async () => {
    // the second round uses the pooled two again
    expect(await connectionsAfter(2, 2, 6)).toBe(2);
  });

  it('keeps one connection for streams one after another', async () => {
    expect(await connectionsAfter(2, 3, 1)).toBe(1);
  });

  it('keeps every stream on one connection with a spread of 1', async () => {
    expect(await connectionsAfter(1, 1, 6)).toBe(1);
  });

  it('leaves no connection or stream in the engine once closed', async () => {
    expect(await eventually(() => nativeHboneActive().streams === 0, 5000)).toBe(true);
  });
});
