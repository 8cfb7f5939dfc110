// The http server's `--call URL`: every request makes one upstream call on a connection of its own.
import { once } from 'node:events';
import { createServer, type Server as HttpServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runClient } from './client';
import { boundAddress, startHttpServer } from './servers';

describe('http --call', () => {
  let backend: HttpServer;
  let frontend: HttpServer;
  let broken: HttpServer;
  let slow: HttpServer;
  let late: HttpServer;
  const backendPeers = new Set<number>();
  beforeAll(async () => {
    backend = await startHttpServer({ app: 'backend', pod: 'pb', node: 'n2', version: 'v1' }, 0, '127.0.0.1');
    backend.on('connection', (s) => backendPeers.add(s.remotePort ?? 0));
    const b = boundAddress(backend);
    frontend = await startHttpServer({ app: 'frontend', pod: 'pf', node: 'n1', version: 'v1' }, 0, '127.0.0.1', { call: `http://127.0.0.1:${b.port}/data` });
    // an upstream port nothing listens on: the frontend must answer 502 with the error
    broken = await startHttpServer({ app: 'frontend', pod: 'pf', node: 'n1', version: 'v1' }, 0, '127.0.0.1', { call: 'http://127.0.0.1:1/' });
    // an upstream that answers after 600 ms, called with a 200 ms limit
    slow = createServer((_req, res) => void setTimeout(() => res.end('late'), 600)).listen(0, '127.0.0.1');
    await once(slow, 'listening');
    late = await startHttpServer({ app: 'frontend', pod: 'pf', node: 'n1', version: 'v1' }, 0, '127.0.0.1', {
      call: `http://127.0.0.1:${boundAddress(slow).port}/`,
      callTimeoutMs: 200,
    });
  });
  afterAll(() => {
    frontend.close();
    broken.close();
    late.close();
    slow.closeAllConnections();
    slow.close();
    backend.close();
  });

  /** Runs the sample client against one of the servers above: `connections` requests, `concurrency` at a time. */
  const callThrough = (server: HttpServer, connections = 1, concurrency = 1) =>
    runClient({
      mode: 'http',
      host: '127.0.0.1',
      port: boundAddress(server).port,
      connections,
      concurrency,
      size: 0,
      totalTimeoutMs: 10_000,
      requestTimeoutMs: 5000,
      path: '/',
    });

  it('calls the upstream once per request and reports who answered', async () => {
    const r = await callThrough(frontend, 5, 2);
    expect(r.statusCodes).toEqual({ 200: 5 });
    expect(r.sample?.app).toBe('frontend');
    expect(r.sample?.upstream?.app).toBe('backend');
    expect(r.sample?.upstream?.status).toBe(200);
    expect(r.sample?.upstream?.peer).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(backendPeers.size).toBe(5); // a new connection per call
  });

  it('answers 502 with the reason when the upstream cannot be reached', async () => {
    const r = await callThrough(broken);
    expect(r.statusCodes).toEqual({ 502: 1 });
  });

  it('answers 502 when the upstream gives no answer within the call limit', async () => {
    const r = await callThrough(late);
    expect(r.statusCodes).toEqual({ 502: 1 });
    expect(r.sample?.upstream?.error).toBe('no answer within 200 ms');
  });
});
