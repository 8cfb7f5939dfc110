// The sample app's HTTP/2 and gRPC modes over loopback: h2c answers like the HTTP server, gRPC Echo
// and Stream with sha256 checks, gRPC statuses reported by name, and a broken stream detected.
import type { Http2Server } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportPassed, runClient } from './client';
import { startGrpcServer, STREAM_PATH } from './grpc';
import { boundAddress, startH2Server } from './servers';

const base = { host: '127.0.0.1', connections: 1, concurrency: 1, size: 0, totalTimeoutMs: 20_000, requestTimeoutMs: 10_000, path: '/' } as const;

describe('sample app: h2 and grpc modes over loopback', () => {
  let web: Http2Server;
  let rpc: grpc.Server;
  let rpcPort: number;
  // a gRPC server whose Stream sends other bytes than its trailer claims, and whose Echo is denied
  let liar: grpc.Server;
  let liarPort: number;
  beforeAll(async () => {
    web = await startH2Server({ app: 'web', pod: 'p', node: 'n', version: 'v2' }, 0, '127.0.0.1');
    ({ server: rpc, port: rpcPort } = await startGrpcServer({ app: 'rpc', pod: 'p', node: 'n', version: 'v3' }, 0, '127.0.0.1'));
    liar = new grpc.Server();
    const same = (b: Buffer): Buffer => b;
    liar.addService(
      {
        Stream: {
          path: STREAM_PATH,
          requestStream: false,
          responseStream: true,
          requestSerialize: same,
          requestDeserialize: same,
          responseSerialize: same,
          responseDeserialize: same,
        },
        Echo: {
          path: '/nodemesh.lab.Sample/Echo',
          requestStream: false,
          responseStream: false,
          requestSerialize: same,
          requestDeserialize: same,
          responseSerialize: same,
          responseDeserialize: same,
        },
      },
      {
        Stream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
          call.write(Buffer.from('not the bytes'));
          const t = new grpc.Metadata();
          t.set('x-body-bytes', '13');
          t.set('x-body-sha256', '0'.repeat(64));
          call.end(t);
        },
        Echo: (_c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
          cb({ code: grpc.status.PERMISSION_DENIED, details: 'RBAC: access denied' }),
      },
    );
    liarPort = await new Promise<number>((resolve, reject) =>
      liar.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
  });
  afterAll(() => {
    web.close();
    rpc.forceShutdown();
    liar.forceShutdown();
  });

  it('h2: the reply names the server, says HTTP/2 and hashes the body; requests share one connection', async () => {
    const peers = new Set<number>();
    web.on('session', (s) => peers.add(s.socket.remotePort ?? 0));
    const r = await runClient({
      ...base,
      mode: 'h2',
      port: boundAddress(web).port,
      size: 3 * 1024 * 1024,
      connections: 6,
      concurrency: 3,
      path: '/h?x=1',
      headers: { 'x-k': 'v' },
    });
    expect(reportPassed(r), JSON.stringify(r)).toBe(true);
    expect(r.statusCodes).toEqual({ 200: 6 });
    expect(r.versions).toEqual({ v2: 6 });
    expect(r.sample).toMatchObject({ app: 'web', request: { method: 'POST', url: '/h?x=1', httpVersion: '2.0', bodyBytes: 3 * 1024 * 1024 } });
    expect(r.sample?.request.headers['x-k']).toBe('v');
    expect(r.sha256Echoed).toBe(r.sha256Sent);
    expect(peers.size).toBe(1);
  });

  it('grpc Echo: request bytes hashed by the server, metadata carried, version counted', async () => {
    const r = await runClient({ ...base, mode: 'grpc', port: rpcPort, size: 5 * 1024 * 1024, connections: 4, concurrency: 2, headers: { 'x-tenant': 'blue' } });
    expect(reportPassed(r), JSON.stringify(r)).toBe(true);
    expect(r.statusCodes).toEqual({ OK: 4 });
    expect(r.versions).toEqual({ v3: 4 });
    expect(r.sample).toMatchObject({ app: 'rpc', request: { method: '/nodemesh.lab.Sample/Echo', bodyBytes: 5 * 1024 * 1024 } });
    expect(r.sample?.request.headers['x-tenant']).toBe('blue');
    expect(r.sha256Echoed).toBe(r.sha256Sent);
  });

  it('grpc Stream: the streamed bytes match the sha256 in the server’s trailers', async () => {
    const size = 4 * 1024 * 1024 + 17;
    const r = await runClient({ ...base, mode: 'grpc', method: 'Stream', port: rpcPort, size, connections: 3, concurrency: 3 });
    expect(reportPassed(r), JSON.stringify(r)).toBe(true);
    expect(r.bytesReceived).toBe(3 * size);
    expect(r.versions).toEqual({ v3: 3 });
    expect(r.statusCodes).toEqual({ OK: 3 });
  });

  it('grpc: a stream that does not match its trailer is a checksum mismatch; a denied call is counted by status name', async () => {
    const bad = await runClient({ ...base, mode: 'grpc', method: 'Stream', port: liarPort, size: 13, connections: 2 });
    expect(bad.checksumMismatches).toBe(2);
    expect(reportPassed(bad)).toBe(false);
    const denied = await runClient({ ...base, mode: 'grpc', port: liarPort, size: 10, connections: 3 });
    expect(denied.statusCodes).toEqual({ PERMISSION_DENIED: 3 });
    expect(denied.errors).toBe(3);
    expect(denied.errorBody).toBe('PERMISSION_DENIED: RBAC: access denied');
    expect(reportPassed(denied)).toBe(false);
  });

  it('refuses an unknown gRPC method', async () => {
    await expect(runClient({ ...base, mode: 'grpc', method: 'Nope', port: rpcPort })).rejects.toThrow(/--method for gRPC must be Echo or Stream/);
  });
});
