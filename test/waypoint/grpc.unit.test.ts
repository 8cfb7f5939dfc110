// gRPC through the waypoint end to end: a @grpc/grpc-js client (h2c to the waypoint's listener)
// and a @grpc/grpc-js server behind an HTTP/2 cluster — unary, server streaming, trailers
// (grpc-status) carried through, and a fault-filter abort answered as a gRPC status.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTTPFault } from '../../api/gen/envoy/extensions/filters/http/fault/v3/fault';
import { pack } from '../../waypoint/config/typed';
import type { Waypoint } from '../../waypoint/waypoint';
import { ControlPlane, freePort, startPlainWaypoint } from './fixture';

const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
const service: grpc.ServiceDefinition = {
  Echo: {
    path: '/nm.test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: raw.serialize,
    requestDeserialize: raw.deserialize,
    responseSerialize: raw.serialize,
    responseDeserialize: raw.deserialize,
  },
  Count: {
    path: '/nm.test.Echo/Count',
    requestStream: false,
    responseStream: true,
    requestSerialize: raw.serialize,
    requestDeserialize: raw.deserialize,
    responseSerialize: raw.serialize,
    responseDeserialize: raw.deserialize,
  },
  Fail: {
    path: '/nm.test.Echo/Fail',
    requestStream: false,
    responseStream: false,
    requestSerialize: raw.serialize,
    requestDeserialize: raw.deserialize,
    responseSerialize: raw.serialize,
    responseDeserialize: raw.deserialize,
  },
};

describe('gRPC through the waypoint (@grpc/grpc-js both ends)', () => {
  const cp = new ControlPlane();
  const server = new grpc.Server();
  let wp: Waypoint;
  let port: number;
  let client: grpc.Client;
  const seenMetadata: grpc.Metadata[] = [];

  beforeAll(async () => {
    server.addService(service, {
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        seenMetadata.push(call.metadata);
        cb(null, Buffer.concat([Buffer.from('echo:'), call.request]));
      },
      Count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        const n = Number(call.request.toString());
        for (let i = 1; i <= n; i++) call.write(Buffer.from(String(i)));
        call.end();
      },
      Fail: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
        cb({ code: grpc.status.FAILED_PRECONDITION, details: 'not today' }),
    });
    const upstream = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    await cp.start();
    port = await freePort();
    cp.cluster('grpc-echo', [upstream], { http2ProtocolOptions: {} });
    cp.listener('grpc-listener', port, 'grpc-routes', [{ name: 'envoy.filters.http.fault', typedConfig: pack(HTTPFault, HTTPFault.fromPartial({})) }]);
    const abort = HTTPFault.fromPartial({ abort: { errorType: { $case: 'grpcStatus', value: grpc.status.UNAVAILABLE }, percentage: { numerator: 100 } } });
    cp.routes({
      name: 'grpc-routes',
      virtualHosts: [
        {
          name: 'grpc',
          domains: ['*'],
          routes: [
            {
              match: {
                pathSpecifier: { $case: 'path', value: '/nm.test.Echo/Fail' },
                headers: [{ name: 'x-fault', headerMatchSpecifier: { $case: 'presentMatch', value: true } }],
              },
              action: { $case: 'route', value: { clusterSpecifier: { $case: 'cluster', value: 'grpc-echo' } } },
              typedPerFilterConfig: { 'envoy.filters.http.fault': pack(HTTPFault, abort) },
            },
            {
              match: { pathSpecifier: { $case: 'prefix', value: '/nm.test.Echo/' }, grpc: {} },
              action: { $case: 'route', value: { clusterSpecifier: { $case: 'cluster', value: 'grpc-echo' }, timeout: { seconds: 0, nanos: 0 } } },
            },
          ],
        },
      ],
    });
    wp = await startPlainWaypoint(cp.address, [port]);
    client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  }, 20_000);

  afterAll(async () => {
    client?.close();
    await wp?.stop();
    await cp.stop();
    server.forceShutdown();
  });

  const unary = (method: string, body: Buffer, md = new grpc.Metadata()): Promise<Buffer> =>
    new Promise((resolve, reject) =>
      client.makeUnaryRequest(`/nm.test.Echo/${method}`, raw.serialize, raw.deserialize, body, md, (err, res) => (err ? reject(err) : resolve(res!))),
    );

  it('carries a unary call and its metadata', async () => {
    const md = new grpc.Metadata();
    md.set('x-tenant', 'blue');
    expect((await unary('Echo', Buffer.from('hi'), md)).toString()).toBe('echo:hi');
    const seen = seenMetadata[seenMetadata.length - 1]!;
    expect(seen.get('x-tenant')).toEqual(['blue']);
    expect(String(seen.get('traceparent')[0])).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it('carries a server stream in order, with the final status', async () => {
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.makeServerStreamRequest('/nm.test.Echo/Count', raw.serialize, raw.deserialize, Buffer.from('50'), new grpc.Metadata());
      call.on('data', (b: Buffer) => got.push(b.toString()));
      call.on('error', reject);
      call.on('status', (s: grpc.StatusObject) => (s.code === grpc.status.OK ? resolve() : reject(new Error(s.details))));
    });
    expect(got).toEqual(Array.from({ length: 50 }, (_, i) => String(i + 1)));
  });

  it("passes the upstream's grpc-status (trailers) through, and answers a fault abort with the configured gRPC status", async () => {
    await expect(unary('Fail', Buffer.from(''))).rejects.toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: 'not today' });
    const md = new grpc.Metadata();
    md.set('x-fault', '1');
    await expect(unary('Fail', Buffer.from(''), md)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    const text = await wp.metrics.registry.getSingleMetricAsString('istio_requests_total');
    expect(text).toMatch(/grpc_response_status="9"[^}]*request_protocol="grpc"|request_protocol="grpc"[^}]*grpc_response_status="9"/);
    expect(text).toMatch(/grpc_response_status="14"[^}]*response_flags="FI"/);
  });
});
