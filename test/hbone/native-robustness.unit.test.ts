// The native HBONE server under the bad input common/hbone/server.ts is tested with
// (robustness.unit.test.ts): garbage bytes, failed or missing handshakes, other protocols, other
// methods, malformed targets and oversized headers are refused one by one, the process survives,
// and the server keeps serving; its stream limit holds.
import { randomBytes } from 'node:crypto';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeHboneAvailable } from '../../native/hbone';
import { echo, roundTrip } from './fixture';
import { nativeServer } from './native-fixture';

const run = nativeHboneAvailable() ? describe : describe.skip;

function endOf(sock: Socket): Promise<void> {
  return new Promise((resolve) => {
    sock.on('error', () => undefined);
    sock.once('close', () => resolve());
  });
}

run('native HBONE server under bad input', () => {
  let s: Awaited<ReturnType<typeof nativeServer>>;
  let host: string;
  let port: number;
  let tlsBase: ConnectionOptions;
  beforeAll(async () => {
    // the upstream holds its connections open (never answers) so streams stay open for the limit test
    s = await nativeServer(echo, undefined, { handshakeTimeoutMs: 300, maxConcurrentStreams: 5 });
    const dest = s.openOptions().destination;
    [host, port] = [dest.split(':')[0] as string, Number(dest.split(':')[1])];
    tlsBase = {
      host,
      port,
      ca: s.mesh.ca.bundle.pem,
      cert: s.mesh.clientCreds.certChain,
      key: s.mesh.clientCreds.key,
      checkServerIdentity: () => undefined,
    };
  });
  afterAll(async () => {
    await s?.close();
  });

  /** An h2 session with the client's valid credentials; `tls` is its socket (to vanish with). */
  function rawSession(): Promise<ClientHttp2Session & { tls: Socket }> {
    return new Promise((resolve, reject) => {
      let tls!: Socket;
      const h = h2connect(`https://${host}:${port}`, { createConnection: () => (tls = tlsConnect({ ...tlsBase, ALPNProtocols: ['h2'] })) });
      h.on('error', () => undefined);
      h.once('remoteSettings', () => resolve(Object.assign(h, { tls })));
      h.once('error', reject);
    });
  }

  function request(h: ClientHttp2Session, headers: Record<string, string>): Promise<number | string> {
    return new Promise((resolve) => {
      const req = h.request(headers, { endStream: false });
      req.once('response', (r) => {
        resolve(Number(r[':status']));
        req.close(); // as HboneClient does with a refusal: the stream's slot is free again (limit 5 here)
      });
      req.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      req.once('close', () => resolve(`closed ${req.rstCode}`));
      req.resume();
    });
  }

  it('drops a connection that sends random bytes', async () => {
    const sock = tcpConnect({ host, port });
    sock.on('connect', () => sock.write(randomBytes(4096)));
    await endOf(sock);
  });

  it('drops a connection that never starts the TLS handshake after the handshake timeout', async () => {
    const before = s.server.stats().handshakeTimeouts;
    const sock = tcpConnect({ host, port });
    const t0 = performance.now();
    await endOf(sock);
    const waited = performance.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(waited).toBeLessThan(3000);
    const deadline = Date.now() + 2000;
    while (s.server.stats().handshakeTimeouts === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(s.server.stats().handshakeTimeouts).toBe(before + 1);
  });

  it('refuses a TLS client without a certificate', async () => {
    const sock = tlsConnect({ ...tlsBase, cert: undefined, key: undefined, ALPNProtocols: ['h2'] });
    sock.resume();
    await endOf(sock);
    expect(sock.alpnProtocol === 'h2' && !sock.destroyed && sock.readable).toBe(false);
  });

  it('refuses a client whose certificate is from another CA', async () => {
    const { createTestCa } = await import('../../common/hbone/testing/pki.js');
    const other = await (await createTestCa('cluster.local')).issue('ns-a', 'sa-client');
    const sock = tlsConnect({ ...tlsBase, cert: other.certChain, key: other.key, ALPNProtocols: ['h2'] });
    sock.resume();
    await endOf(sock);
  });

  it('refuses TLS 1.2', async () => {
    const sock = tlsConnect({ ...tlsBase, maxVersion: 'TLSv1.2', ALPNProtocols: ['h2'] });
    let secure = false;
    sock.once('secureConnect', () => (secure = true));
    await endOf(sock);
    expect(secure).toBe(false);
  });

  it('refuses a client that does not speak h2', async () => {
    const sock = tlsConnect({ ...tlsBase, ALPNProtocols: ['http/1.1'] });
    sock.once('secureConnect', () => sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const got: Buffer[] = [];
    sock.on('data', (c: Buffer) => got.push(c));
    await endOf(sock);
    expect(Buffer.concat(got).toString()).not.toMatch(/HTTP\/1\.1 200/);
  });

  it('closes a TLS connection that sends garbage instead of the HTTP/2 preface', async () => {
    const sock = tlsConnect({ ...tlsBase, ALPNProtocols: ['h2'] });
    sock.once('secureConnect', () => sock.write(randomBytes(2048)));
    sock.resume();
    await endOf(sock);
  });

  it('closes a connection whose peer vanishes mid-stream, resetting its upstream', async () => {
    const h = await rawSession();
    const req = h.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${s.mesh.upstreamPort}` }, { endStream: false });
    await new Promise((r) => req.once('response', r));
    req.write(randomBytes(100_000));
    const active = s.server.stats().streamsActive;
    expect(active).toBeGreaterThanOrEqual(1);
    h.tls.destroy();
    const deadline = Date.now() + 3000;
    while (s.server.stats().streamsActive >= active && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(s.server.stats().streamsActive).toBeLessThan(active);
  });

  it('answers 405 to methods other than CONNECT', async () => {
    const h = await rawSession();
    try {
      expect(await request(h, { ':method': 'GET', ':path': '/', ':scheme': 'https', ':authority': '127.0.0.1:80' })).toBe(405);
      expect(await request(h, { ':method': 'POST', ':path': '/x', ':scheme': 'https', ':authority': '127.0.0.1:80' })).toBe(405);
    } finally {
      h.destroy();
    }
  });

  it('answers 400 to a CONNECT whose authority is not ip:port', async () => {
    const h = await rawSession();
    try {
      for (const authority of ['example.com:80', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:70000', '::1:80', '[::1]', 'a:b:c']) {
        expect(await request(h, { ':method': 'CONNECT', ':authority': authority }), authority).toBe(400);
      }
      expect(s.server.stats().streamsRefused[400]).toBe(7);
    } finally {
      h.destroy();
    }
  });

  it('refuses a CONNECT whose headers exceed 16 KiB, and keeps the connection', async () => {
    const h = await rawSession();
    try {
      const big = await request(h, { ':method': 'CONNECT', ':authority': `127.0.0.1:${s.mesh.upstreamPort}`, baggage: 'x'.repeat(20_000) });
      expect(big).not.toBe(200);
      const ok = h.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${s.mesh.upstreamPort}` }, { endStream: false });
      expect(await new Promise((r) => ok.once('response', (x) => r(x[':status'])))).toBe(200);
      ok.close();
    } finally {
      h.destroy();
    }
  });

  it('holds its SETTINGS_MAX_CONCURRENT_STREAMS: a stream beyond it is refused', async () => {
    const h = await rawSession();
    try {
      expect(h.remoteSettings.maxConcurrentStreams).toBe(5);
      const open = [1, 2, 3, 4, 5].map(() => h.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${s.mesh.upstreamPort}` }, { endStream: false }));
      for (const r of open) expect(await new Promise((ok) => r.once('response', (x) => ok(x[':status'])))).toBe(200);
      // node:http2 itself queues beyond the peer's limit; the server's own enforcement shows on a
      // raw frame, so the check here is that the five are served and a sixth is not answered 200
      const sixth = await Promise.race([
        request(h, { ':method': 'CONNECT', ':authority': `127.0.0.1:${s.mesh.upstreamPort}` }),
        new Promise((r) => setTimeout(() => r('queued'), 300)),
      ]);
      expect(sixth).not.toBe(200);
      for (const r of open) r.close();
    } finally {
      h.destroy();
    }
  });

  it('still opens tunnels afterwards', async () => {
    expect(s.server.stats().tlsErrors).toBeGreaterThanOrEqual(4);
    const stream = await s.mesh.client.open(s.openOptions());
    expect((await roundTrip(stream, Buffer.from('still here'))).toString()).toBe('still here');
  });
});
