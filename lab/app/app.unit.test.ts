// The sample app over loopback: echo and HTTP servers with the client, checksums, and the time bound.
import { createServer, type Server, type Socket } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportPassed, runClient, type ClientOptions } from './client';
import { boundAddress, startEchoServer, startHttpServer } from './servers';

const base = { host: '127.0.0.1', connections: 1, concurrency: 1, size: 0, totalTimeoutMs: 10_000, requestTimeoutMs: 5_000, path: '/' } as const;

describe('sample app over loopback', () => {
  let echo: Server;
  let web: HttpServer;
  let silent: Server;
  const held: Socket[] = [];
  beforeAll(async () => {
    echo = await startEchoServer(0, '127.0.0.1');
    web = await startHttpServer({ app: 'web', pod: 'p', node: 'n', version: 'v2' }, 0, '127.0.0.1');
    // accepts, keeps the connection open after the client half-closes, never answers
    silent = createServer({ allowHalfOpen: true }, (sock) => void held.push(sock));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  });
  afterAll(() => {
    echo.close();
    web.close();
    for (const sock of held) sock.destroy();
    silent.close();
  });

  it('TCP echo: bytes and sha256 come back for 0 B, 1 B and 3 MiB', async () => {
    for (const size of [0, 1, 3 * 1024 * 1024]) {
      const r = await runClient({ ...base, mode: 'tcp', port: boundAddress(echo).port, size, connections: 5, concurrency: 2 });
      expect(reportPassed(r)).toBe(true);
      expect(r.bytesReceived).toBe(5 * size);
      expect(r.sha256Echoed).toBe(r.sha256Sent);
      expect(r.latencyMs.count).toBe(5);
    }
  });

  it('HTTP: the reply names the server and what it saw', async () => {
    const opts: ClientOptions = { ...base, mode: 'http', port: boundAddress(web).port, size: 1000, path: '/hello?x=1', headers: { 'x-k': 'v' } };
    const r = await runClient(opts);
    expect(reportPassed(r)).toBe(true);
    expect(r.sample).toMatchObject({
      app: 'web',
      version: 'v2',
      request: { method: 'POST', url: '/hello?x=1', bodyBytes: 1000 },
      peer: { address: '127.0.0.1' },
    });
    expect(r.sample?.request.headers['x-k']).toBe('v');
    expect(r.sample?.request.bodySha256).toBe(r.sha256Sent);
  });

  it('is bounded in time: a server that never answers is reported, not waited for', async () => {
    const t0 = Date.now();
    const r = await runClient({
      ...base,
      mode: 'tcp',
      port: (silent.address() as { port: number }).port,
      connections: 50,
      concurrency: 5,
      totalTimeoutMs: 300,
    });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(r.timedOut).toBe(true);
    expect(r.ok).toBe(0);
    expect(r.errors).toBeGreaterThan(0);
    expect(r.completed).toBeLessThan(50);
    expect(reportPassed(r)).toBe(false);
  });

  it('counts a wrong echo as a checksum mismatch', async () => {
    // reads everything, then answers with other bytes
    const liar = createServer({ allowHalfOpen: true }, (sock) => {
      sock.resume();
      sock.on('end', () => sock.end('not what you sent'));
    });
    await new Promise<void>((r) => liar.listen(0, '127.0.0.1', r));
    try {
      const r = await runClient({ ...base, mode: 'tcp', port: (liar.address() as { port: number }).port, size: 17, connections: 2 });
      expect(r.checksumMismatches).toBe(2);
      expect(r.sha256Echoed).not.toBe(r.sha256Sent);
      expect(reportPassed(r)).toBe(false);
    } finally {
      liar.close();
    }
  });

  it('refuses unbounded runs', async () => {
    await expect(runClient({ ...base, mode: 'tcp', port: 1, connections: 1_000_000 })).rejects.toThrow(/--connections must be a whole number from 1 to 100000/);
  });
});
