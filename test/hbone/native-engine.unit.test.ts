// The native HBONE engine (native/hbone*.ts) on the wire with node:http2's HBONE client and server
// (a mesh upgrades node by node), and with itself: bytes intact both ways at once, the SPIFFE ID
// each side sees, refusals with their status, half-close, resets, and nothing left open after.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TunnelConnectError, TunnelRefusedError } from '../../common/hbone/errors';
import { deny } from '../../common/hbone/server';
import { nativeHboneActive, nativeHboneAvailable } from '../../native/hbone';
import { NativeHboneClient } from '../../native/hbone-client';
import { digestReply, echo, eventually, quietLogger, roundTrip, sha256, startMesh, type Mesh } from './fixture';
import { capturedPair, nativeServer, nativeTunnel, openFds, readAll, sendAll } from './native-fixture';

const run = nativeHboneAvailable() ? describe : describe.skip;

run('native HBONE client -> node:http2 HBONE server', () => {
  let mesh: Mesh;
  let client: NativeHboneClient;
  beforeAll(async () => {
    mesh = await startMesh({
      decide: async (r, connectIt) => (r.target.port === 1 ? deny(403, 'test') : connectIt()),
    });
    client = new NativeHboneClient({ logger: quietLogger });
  });
  afterAll(async () => {
    client?.close(0);
    await mesh?.close();
  });

  for (const size of [0, 1, 1024 * 1024, 64 * 1024 * 1024]) {
    it(`echoes ${size} bytes unchanged, both directions at once`, async () => {
      const data = randomBytes(size);
      const t = await nativeTunnel(client, mesh);
      const back = readAll(t.app);
      sendAll(t.app, data);
      const got = await back;
      expect(got.error).toBeUndefined();
      expect(got.data.length).toBe(size);
      expect(sha256(got.data)).toBe(sha256(data));
      const r = await t.ended;
      expect(r).toMatchObject({ clean: true, status: 200, bytesOut: size, bytesIn: size });
    }, 120_000);
  }

  it('presents the client identity the server sees', async () => {
    const before = mesh.requests.length;
    const t = await nativeTunnel(client, mesh, { headers: { forwarded: 'for=10.200.1.4' } });
    const back = readAll(t.app);
    t.app.end('hi');
    expect((await back).data.toString()).toBe('hi');
    expect(mesh.requests[before]?.peerSpiffeId).toBe('spiffe://cluster.local/ns/ns-a/sa/sa-client');
    expect(mesh.requests[before]?.headers.forwarded).toBe('for=10.200.1.4');
  });

  it('resets the app on a refusal and reports the status', async () => {
    const t = await nativeTunnel(client, mesh, { authority: '127.0.0.1:1' });
    const back = readAll(t.app);
    t.app.write('early bytes, dropped by the server');
    expect(await t.status).toBe(403);
    expect((await back).error).toBe('ECONNRESET');
    expect(await t.ended).toMatchObject({ clean: false, status: 403 });
  });

  it('refuses a server that is not the expected identity', async () => {
    const pair = await capturedPair();
    const err = await client
      .tunnel(mesh.openOptions({ expectedIdentity: 'spiffe://cluster.local/ns/ns-b/sa/someone-else' }), pair.captured, { end: () => undefined })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TunnelConnectError);
    expect(String((err as Error).message)).toMatch(/sa\/sa-server, but spiffe:\/\/cluster.local\/ns\/ns-b\/sa\/someone-else was expected/);
    pair.close();
    pair.captured.destroy();
  });
});

run('node:http2 HBONE client -> native HBONE server', () => {
  let s: Awaited<ReturnType<typeof nativeServer>>;
  beforeAll(async () => {
    s = await nativeServer(echo, async (r, c) => (r.target.port === 1 ? deny(403, 'test') : c()));
  });
  afterAll(async () => {
    await s?.close();
  });

  for (const size of [0, 1, 1024 * 1024, 64 * 1024 * 1024]) {
    it(`echoes ${size} bytes unchanged, both directions at once`, async () => {
      const data = randomBytes(size);
      const stream = await s.mesh.client.open(s.openOptions());
      const back = await roundTrip(stream, data);
      expect(back.length).toBe(size);
      expect(sha256(back)).toBe(sha256(data));
    }, 120_000);
  }

  it('hands the handler the client SPIFFE ID, authority and headers', async () => {
    const before = s.requests.length;
    const stream = await s.mesh.client.open(s.openOptions({ headers: { forwarded: 'for=10.200.1.4', baggage: 'k=v' } }));
    await roundTrip(stream, Buffer.from('hi'));
    const r = s.requests[before];
    expect(r?.peerSpiffeId).toBe('spiffe://cluster.local/ns/ns-a/sa/sa-client');
    expect(r?.headers).toMatchObject({ forwarded: 'for=10.200.1.4', baggage: 'k=v' });
    expect(r?.listener).toBe('test');
  });

  it('answers a denied CONNECT with its status', async () => {
    const err = await s.mesh.client.open(s.openOptions({ authority: '127.0.0.1:1' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TunnelRefusedError);
    expect((err as TunnelRefusedError).status).toBe(403);
    expect(s.server.stats().streamsRefused[403]).toBeGreaterThanOrEqual(1);
  });

  it('shows the client the server identity it expects', async () => {
    const err = await s.mesh.client.open(s.openOptions({ expectedIdentity: 'spiffe://cluster.local/ns/x/sa/y' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TunnelConnectError);
    expect(String((err as Error).message)).toMatch(/sa-server, but spiffe:\/\/cluster.local\/ns\/x\/sa\/y was expected/);
  });
});

run('native HBONE client -> native HBONE server', () => {
  it('keeps a pooled connection while streams keep coming and closes it once idle for the idle timeout after its last stream', async () => {
    const s = await nativeServer(echo);
    const idleMs = 400;
    const client = new NativeHboneClient({ logger: quietLogger, idleTimeoutMs: idleMs, connectionsPerKey: 1 });
    const once = async (text: string): Promise<void> => {
      const t = await nativeTunnel(client, s);
      const back = readAll(t.app);
      t.app.end(text);
      expect((await back).data.toString()).toBe(text);
      await t.ended;
    };
    try {
      // a stream every ~150 ms for ~1.5 idle timeouts: the connection is never idle long enough
      const until = Date.now() + idleMs * 1.5;
      await once('first');
      for (let i = 0; Date.now() < until; i++) {
        await new Promise((r) => setTimeout(r, 150));
        await once(`busy ${i}`);
      }
      expect(client.connectionCount()).toBe(1);
      expect(s.server.stats().connectionsAccepted).toBe(1);
      const last = Date.now();
      expect(await eventually(() => client.connectionCount() === 0, 5_000)).toBe(true);
      expect(Date.now() - last).toBeGreaterThanOrEqual(idleMs - 50); // not before the idle timeout
      expect(await eventually(() => s.server.stats().connectionsActive === 0, 5_000)).toBe(true);
      // and a new tunnel dials again
      await once('again');
      expect(s.server.stats().connectionsAccepted).toBe(2);
    } finally {
      client.close(0);
      await s.close();
    }
  }, 30_000);

  it('echoes 64 MiB both ways at once, and half-closes: the reply comes after the client FIN', async () => {
    const s = await nativeServer(echo);
    const client = new NativeHboneClient({ logger: quietLogger });
    try {
      const data = randomBytes(64 * 1024 * 1024);
      const t = await nativeTunnel(client, s);
      const back = readAll(t.app);
      sendAll(t.app, data);
      const got = await back;
      expect(got.error).toBeUndefined();
      expect(sha256(got.data)).toBe(sha256(data));
      expect(await t.ended).toMatchObject({ clean: true, bytesOut: data.length, bytesIn: data.length });
      expect(s.requests[0]?.peerSpiffeId).toBe('spiffe://cluster.local/ns/ns-a/sa/sa-client');
    } finally {
      client.close(0);
      await s.close();
    }
  }, 120_000);

  it('passes the client FIN on as a half-close (the upstream answers after it)', async () => {
    const s = await nativeServer(digestReply);
    const client = new NativeHboneClient({ logger: quietLogger });
    try {
      const data = randomBytes(3 * 1024 * 1024 + 7);
      const t = await nativeTunnel(client, s);
      const back = readAll(t.app);
      sendAll(t.app, data);
      expect((await back).data.toString()).toBe(`${data.length} ${sha256(data)}`);
      expect((await t.ended).clean).toBe(true);
    } finally {
      client.close(0);
      await s.close();
    }
  }, 60_000);

  it('holds a sender back while the app does not read (flow control), then delivers every byte', async () => {
    // the app reads nothing for a second while 48 MiB (three connection windows) come its way
    const s = await nativeServer((sock) => {
      sock.pause();
      setTimeout(() => {
        digestReply(sock);
        sock.resume(); // paused explicitly: a 'data' listener alone does not restart it
      }, 1000);
    });
    const client = new NativeHboneClient({ logger: quietLogger });
    try {
      const data = randomBytes(48 * 1024 * 1024);
      const t = await nativeTunnel(client, s);
      const back = readAll(t.app);
      sendAll(t.app, data);
      await new Promise((r) => setTimeout(r, 800));
      // while the app reads nothing: the stream's 4 MiB window plus what the sockets on the way buffer
      expect(t.bytes()?.out).toBeLessThan(16 * 1024 * 1024);
      expect((await back).data.toString()).toBe(`${data.length} ${sha256(data)}`);
      expect((await t.ended).clean).toBe(true);
    } finally {
      client.close(0);
      await s.close();
    }
  }, 60_000);

  it('passes an upstream reset on as a reset of the app', async () => {
    const s = await nativeServer((sock) => sock.once('data', () => sock.resetAndDestroy()));
    const client = new NativeHboneClient({ logger: quietLogger });
    try {
      const t = await nativeTunnel(client, s);
      const back = readAll(t.app);
      t.app.write('hello');
      expect((await back).error).toBe('ECONNRESET');
      expect((await t.ended).clean).toBe(false);
    } finally {
      client.close(0);
      await s.close();
    }
  });

  it('passes an app reset on to the upstream', async () => {
    let upstreamSaw!: (e: string) => void;
    const saw = new Promise<string>((r) => (upstreamSaw = r));
    const s = await nativeServer((sock) => {
      sock.on('error', (e: NodeJS.ErrnoException) => upstreamSaw(e.code ?? e.message));
      sock.on('end', () => upstreamSaw('end'));
      sock.once('data', () => sock.write('ready'));
    });
    const client = new NativeHboneClient({ logger: quietLogger });
    try {
      const t = await nativeTunnel(client, s);
      t.app.once('data', () => t.app.resetAndDestroy());
      t.app.write('hello');
      expect(await saw).toBe('ECONNRESET');
      expect((await t.ended).clean).toBe(false);
    } finally {
      client.close(0);
      await s.close();
    }
  });

  // Tunnels opened in one go queue their commands behind each other (one wake-up of the engine
  // thread for the lot), and the small messages of many streams on one connection leave together
  // (one flush per epoll batch): every app must still get exactly its own bytes back, in order.
  it('keeps 48 tunnels opened at once apart, each echoing its own 300 small writes in order', async () => {
    const s = await nativeServer(echo);
    const client = new NativeHboneClient({ logger: quietLogger });
    try {
      const pairs = await Promise.all(Array.from({ length: 48 }, () => capturedPair()));
      await Promise.all(pairs.map((p) => client.tunnel(s.openOptions(), p.captured, { end: () => undefined })));
      const results = await Promise.all(
        pairs.map(async (p, i) => {
          const sent: Buffer[] = [];
          const back = readAll(p.app);
          for (let k = 0; k < 300; k++) {
            const m = Buffer.from(`tunnel ${i} message ${k};`);
            sent.push(m);
            p.app.write(m);
            if (k % 50 === 49) await new Promise((r) => setImmediate(r));
          }
          p.app.end();
          const got = await back;
          return { error: got.error, same: got.data.equals(Buffer.concat(sent)) };
        }),
      );
      expect(results.filter((r) => r.error || !r.same)).toEqual([]);
      expect(s.requests.length).toBe(48);
      for (const p of pairs) p.app.destroy();
    } finally {
      client.close(0);
      await s.close();
    }
  }, 60_000);

  it('leaves no connection, stream or fd behind once closed', async () => {
    const fdsBefore = openFds();
    const s = await nativeServer(echo);
    const client = new NativeHboneClient({ logger: quietLogger });
    const tunnels = await Promise.all([1, 2, 3, 4].map(() => nativeTunnel(client, s)));
    await Promise.all(
      tunnels.map(async (t) => {
        const back = readAll(t.app);
        t.app.end('x');
        await back;
        await t.ended;
      }),
    );
    for (const t of tunnels) t.app.destroy();
    client.close(0);
    await s.close();
    expect(await eventually(() => nativeHboneActive().connections === 0 && nativeHboneActive().streams === 0, 5000)).toBe(true);
    expect(await eventually(() => openFds() <= fdsBefore, 5000)).toBe(true);
  }, 60_000);
});
