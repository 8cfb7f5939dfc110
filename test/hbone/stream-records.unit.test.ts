// Every CONNECT stream the handler allowed is released (its upstream ended, its onClose called
// exactly once) however the stream ends: cancelled by the client while the decision is pending
// or just after it, reset in a rapid-reset burst, or refused beyond the concurrency limit. The
// handler here does what the node proxy's does — opens a record when it allows (connection table,
// policy guard) and removes it in onClose — so a stream the server forgets shows as a record left.
import { connect as h2connect, constants as h2, type ClientHttp2Session } from 'node:http2';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, meshClientTls, startMesh, type Mesh } from './fixture';

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head.writeUInt8(type, 3);
  head.writeUInt8(flags, 4);
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('HBONE server: stream records are released however a stream ends', () => {
  let mesh: Mesh;
  let tlsBase: ConnectionOptions;
  const records = new Map<number, number>(); // record id -> onClose calls
  let nextRecord = 0;
  let doubleClose = 0;
  let upstreamsOpen = 0;
  const open = (): number => [...records.values()].filter((n) => n === 0).length;

  beforeAll(async () => {
    mesh = await startMesh({
      server: { maxConcurrentStreams: 20 },
      upstream: (s) => {
        upstreamsOpen++;
        s.once('close', () => upstreamsOpen--);
        s.pipe(s);
      },
      decide: async (_r, connect) => {
        // the node proxy evaluates policy and dials the app before it answers: a client may give
        // up meanwhile, and the record is opened regardless (as inbound.ts does).
        await sleep(Math.random() * 10);
        const d = await connect();
        if (!d.allow) return d;
        const id = nextRecord++;
        records.set(id, 0);
        return {
          ...d,
          onClose: () => {
            const n = records.get(id) ?? 0;
            if (n > 0) doubleClose++;
            records.set(id, n + 1);
          },
        };
      },
    });
    tlsBase = meshClientTls(mesh);
  });
  afterAll(async () => {
    await mesh?.close();
  });

  function session(): Promise<ClientHttp2Session> {
    return new Promise((resolve, reject) => {
      const s = h2connect(`https://${mesh.destination}`, { createConnection: () => tlsConnect(tlsBase) });
      s.on('error', () => undefined);
      s.once('remoteSettings', () => resolve(s));
      s.once('error', reject);
    });
  }

  const authority = (): string => `127.0.0.1:${mesh.upstreamPort}`;

  async function settled(): Promise<void> {
    const ok = await eventually(() => open() === 0 && mesh.server.stats().streamsActive === 0 && upstreamsOpen === 0, 10_000);
    expect({ recordsOpen: open(), streamsActive: mesh.server.stats().streamsActive, upstreamsOpen, doubleClose }).toEqual({
      recordsOpen: 0,
      streamsActive: 0,
      upstreamsOpen: 0,
      doubleClose: 0,
    });
    expect(ok).toBe(true);
  }

  it('releases streams the client cancels 0–50 ms after opening them', async () => {
    const s = await session();
    const done: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) {
      const req = s.request({ ':method': 'CONNECT', ':authority': authority() }, { endStream: false });
      req.on('error', () => undefined);
      req.resume();
      done.push(
        new Promise<void>((resolve) => {
          req.once('close', () => resolve());
          setTimeout(() => req.close(h2.NGHTTP2_CANCEL), Math.random() * 50);
        }),
      );
      if (i % 20 === 19) await sleep(5); // stay near the concurrency limit, not far beyond it
    }
    await Promise.all(done);
    s.destroy();
    await settled();
    expect(nextRecord).toBeGreaterThan(0); // some decisions did allow (and were then released)
  });

  it('releases every stream of a rapid-reset burst (HEADERS then RST_STREAM at once)', async () => {
    // Raw frames, as an attacker writes them (node's own client drops a HEADERS it has not sent
    // yet when the stream is closed at once): HEADERS(CONNECT) + RST_STREAM(CANCEL) per stream.
    const seen = mesh.requests.length;
    const total = Number(process.env.NM_RAPID_RESET ?? 5_000);
    let sent = 0;
    while (sent < total) {
      const n = Math.min(900, total - sent); // nghttp2 answers a longer burst of resets with GOAWAY
      await rapidReset(n);
      sent += n;
    }
    await settled();
    // most of the burst reached the handler (nghttp2 may drop streams it already knows are reset)
    expect(mesh.requests.length - seen).toBeGreaterThan(total / 2);
  }, 60_000);

  /** One TLS connection: preface, SETTINGS, then `n` x (HEADERS CONNECT, RST_STREAM CANCEL). */
  function rapidReset(n: number): Promise<void> {
    return new Promise((resolve) => {
      const sock = tlsConnect(tlsBase, () => {
        const auth = Buffer.from(authority());
        // HPACK: literal header field without indexing, indexed name (:method = static 2, :authority = static 1)
        const block = Buffer.concat([Buffer.from([0x02, 7]), Buffer.from('CONNECT'), Buffer.from([0x01, auth.length]), auth]);
        const frames: Buffer[] = [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(0x4, 0, 0, Buffer.alloc(0))];
        for (let i = 0; i < n; i++) {
          const id = 1 + 2 * i;
          frames.push(frame(0x1, 0x4, id, block));
          const code = Buffer.alloc(4);
          code.writeUInt32BE(h2.NGHTTP2_CANCEL);
          frames.push(frame(0x3, 0, id, code));
        }
        sock.write(Buffer.concat(frames));
        setTimeout(() => sock.end(), 200);
      });
      sock.on('error', () => undefined);
      sock.resume();
      sock.once('close', () => resolve());
    });
  }

  it('releases streams beyond the concurrency limit and those cancelled while waiting', async () => {
    const s = await session();
    const statuses: Array<number | string> = [];
    const reqs = Array.from({ length: 60 }, () => {
      const req = s.request({ ':method': 'CONNECT', ':authority': authority() }, { endStream: false });
      req.on('error', (err: NodeJS.ErrnoException) => statuses.push(err.code ?? 'error'));
      req.once('response', (h) => statuses.push(Number(h[':status'])));
      req.resume();
      return req;
    });
    await eventually(() => statuses.length >= 20, 5_000);
    for (const r of reqs) r.close(h2.NGHTTP2_CANCEL);
    await sleep(50);
    s.destroy();
    await settled();
  });

  it('still opens a tunnel afterwards', async () => {
    const stream = await mesh.client.open(mesh.openOptions());
    stream.end('ok');
    const got: Buffer[] = [];
    for await (const c of stream) got.push(c as Buffer);
    expect(Buffer.concat(got).toString()).toBe('ok');
  });
});
