// The server keeps serving whatever arrives on its port: garbage bytes, failed handshakes, other
// protocols, other methods and malformed targets are refused one by one.
import { randomBytes } from 'node:crypto';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roundTrip, startMesh, type Mesh } from './fixture';

function endOf(sock: import('node:net').Socket): Promise<void> {
  return new Promise((resolve) => {
    sock.on('error', () => undefined);
    sock.once('close', () => resolve());
  });
}

describe('HBONE server under bad input', () => {
  let mesh: Mesh;
  let host: string;
  let port: number;
  let tlsBase: ConnectionOptions;
  beforeAll(async () => {
    mesh = await startMesh({ server: { handshakeTimeoutMs: 300 } });
    [host, port] = [mesh.destination.split(':')[0] as string, Number(mesh.destination.split(':')[1])];
    tlsBase = {
      host,
      port,
      ca: mesh.ca.bundle.pem,
      cert: mesh.clientCreds.certChain,
      key: mesh.clientCreds.key,
      checkServerIdentity: () => undefined,
    };
  });
  afterAll(async () => {
    await mesh?.close();
  });

  /** An h2 session with the client's valid credentials, bypassing HboneClient's checks. */
  function rawSession(): Promise<ClientHttp2Session> {
    return new Promise((resolve, reject) => {
      const s = h2connect(`https://${mesh.destination}`, { createConnection: () => tlsConnect({ ...tlsBase, ALPNProtocols: ['h2'] }) });
      s.once('remoteSettings', () => resolve(s));
      s.once('error', reject);
    });
  }

  function request(s: ClientHttp2Session, headers: Record<string, string>): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = s.request(headers, { endStream: false });
      req.once('response', (h) => resolve(Number(h[':status'])));
      req.once('error', reject);
      req.resume();
    });
  }

  it('drops a connection that sends random bytes', async () => {
    const sock = tcpConnect({ host, port });
    sock.on('connect', () => sock.write(randomBytes(4096)));
    await endOf(sock);
  });

  it('drops a connection that never starts the TLS handshake after the handshake timeout', async () => {
    const sock = tcpConnect({ host, port });
    const t0 = performance.now();
    await endOf(sock);
    const waited = performance.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(waited).toBeLessThan(3000);
  });

  it('refuses a TLS client without a certificate', async () => {
    const sock = tlsConnect({ ...tlsBase, cert: undefined, key: undefined, ALPNProtocols: ['h2'] });
    sock.resume();
    await endOf(sock);
    expect(sock.alpnProtocol === 'h2' && !sock.destroyed && sock.readable).toBe(false);
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

  it('answers 405 to methods other than CONNECT', async () => {
    const s = await rawSession();
    try {
      expect(await request(s, { ':method': 'GET', ':path': '/', ':scheme': 'https', ':authority': '127.0.0.1:80' })).toBe(405);
      expect(await request(s, { ':method': 'POST', ':path': '/x', ':scheme': 'https', ':authority': '127.0.0.1:80' })).toBe(405);
    } finally {
      s.destroy();
    }
  });

  it('answers 400 to a CONNECT whose authority is not ip:port', async () => {
    const s = await rawSession();
    try {
      for (const authority of ['example.com:80', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:70000', '::1:80', '[::1]', 'a:b:c']) {
        expect(await request(s, { ':method': 'CONNECT', ':authority': authority }), authority).toBe(400);
      }
      expect(mesh.server.stats().streamsRefused[400]).toBe(7);
    } finally {
      s.destroy();
    }
  });

  it('still opens tunnels afterwards', async () => {
    const stats = mesh.server.stats();
    expect(stats.tlsErrors).toBeGreaterThanOrEqual(3);
    const stream = await mesh.client.open(mesh.openOptions());
    expect((await roundTrip(stream, Buffer.from('still here'))).toString()).toBe('still here');
  });
});
