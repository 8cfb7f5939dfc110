// Istio's standard labels on the waypoint's request metrics, read from its real registry after
// real requests: an HTTP/1.1, an h2c and a gRPC request arrive over HBONE from a client with a
// workload certificate from the real CA (control/ca) and the baggage a node proxy puts on the
// CONNECT; the waypoint routes them by what control/envoy sends (connect_terminate, internal
// listeners, `outbound|80||<host>` EDS clusters whose endpoints carry the HBONE marker and
// `nodemesh.identity`) and tunnels to a node proxy holding the backend's identity.
import { connect as h2connect, createServer as createH2Server, type ClientHttp2Stream, type Http2Server } from 'node:http2';
import { request } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../../api/gen/envoy/config/cluster/v3/cluster';
import { Listener } from '../../api/gen/envoy/config/listener/v3/listener';
import { HboneClient } from '../../common/hbone/client';
import { allow, deny, HboneServer } from '../../common/hbone/server';
import type { WorkloadCertificate } from '../../common/identity/manager';
import type { RunningWaypoint } from '../../waypoint/run';
import { TYPE } from '../../waypoint/xds/resources';
import { backend, connectTerminate, ControlPlane, internalCluster, MeshCa, quiet, startMeshWaypoint, type Backend } from './fixture';

const TD = 'cluster.local';
const WAYPOINT_ID = `spiffe://${TD}/ns/shop/sa/shop-waypoint`;
const CLIENT_ID = `spiffe://${TD}/ns/shop/sa/frontend-sa`;
const API_ID = `spiffe://${TD}/ns/shop/sa/api-sa`;
// What node-proxy/mesh/trace.ts sourceBaggage() sends for Workload frontend-7d9 (app=frontend, v3).
const BAGGAGE = 'k8s.cluster.name=Kubernetes,k8s.namespace.name=shop,k8s.deployment.name=frontend-7d9,service.name=frontend,service.version=v3';
const SERVICES = {
  web: { vip: '10.96.0.50', target: 8080, host: `web-v1.shop.svc.${TD}`, http2: false },
  h2: { vip: '10.96.0.53', target: 8081, host: `h2.shop.svc.${TD}`, http2: true },
  rpc: { vip: '10.96.0.56', target: 9090, host: `rpc.shop.svc.${TD}`, http2: true },
} as const;
type Kind = keyof typeof SERVICES;
const POD_IP = '10.200.2.7';

const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
const echoService: grpc.ServiceDefinition = {
  Echo: {
    path: '/nm.test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: raw.serialize,
    requestDeserialize: raw.deserialize,
    responseSerialize: raw.serialize,
    responseDeserialize: raw.deserialize,
  },
};

/** The labels of the istio_requests_total series whose labels include `match`, one per series. */
async function series(rw: RunningWaypoint, match: Record<string, string>): Promise<Array<Record<string, string>>> {
  const metric = await rw.waypoint.metrics.registry.getSingleMetric('istio_requests_total')!.get();
  return metric.values
    .map((v) => Object.fromEntries(Object.entries(v.labels).map(([k, x]) => [k, String(x)])))
    .filter((l) => Object.entries(match).every(([k, x]) => l[k] === x));
}

describe('Istio standard labels on the waypoint request metrics (HTTP/1.1, h2c, gRPC over HBONE)', () => {
  const cp = new ControlPlane();
  let mesh: MeshCa;
  let running: RunningWaypoint;
  let frontend: WorkloadCertificate;
  let nodeProxy: HboneServer;
  let web: Backend;
  let h2server: Http2Server;
  const grpcServer = new grpc.Server();
  const hbone = new HboneClient({ logger: quiet });
  const cleanups: Array<() => void> = [];

  const tunnel = (kind: Kind, baggage = BAGGAGE): Promise<ClientHttp2Stream> =>
    hbone.open({
      source: { certChain: frontend.certChainPem, key: frontend.privateKeyPem },
      trustBundle: frontend.trustBundle,
      destination: `127.0.0.1:${running.waypoint.ports.hbone!}`,
      expectedIdentity: WAYPOINT_ID,
      authority: `${SERVICES[kind].vip}:80`,
      headers: baggage ? { baggage } : {},
      timeoutMs: 3000,
    });

  beforeAll(async () => {
    mesh = await MeshCa.create();
    await cp.start(0, mesh);
    const address = `127.0.0.1:${cp.port}`;
    web = await backend('web');
    h2server = createH2Server((req, res) => {
      req.resume();
      req.on('end', () => res.end('h2'));
    });
    await new Promise<void>((r) => h2server.listen(0, '127.0.0.1', r));
    grpcServer.addService(echoService, { Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request) });
    const grpcPort = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const appPort: Record<number, number> = { 8080: web.port, 8081: (h2server.address() as { port: number }).port, 9090: grpcPort };

    const f = await mesh.workloadCertificate(address, 'node-a', 'shop', 'frontend-sa');
    const a = await mesh.workloadCertificate(address, 'node-b', 'shop', 'api-sa');
    frontend = f.cert;
    for (const x of [f, a]) cleanups.push(() => (x.manager.close(), x.client.close()));
    // The backend pod's node proxy: HBONE with api-sa's identity, connecting to the app by target port.
    nodeProxy = new HboneServer({
      credentials: { certChain: a.cert.certChainPem, key: a.cert.privateKeyPem, trustBundle: a.cert.trustBundle },
      logger: quiet,
      handler: async (r) => {
        const port = appPort[r.target.port];
        if (r.target.host !== POD_IP || port === undefined) return deny(503, 'no such app');
        const sock = netConnect({ host: '127.0.0.1', port });
        await new Promise((res, rej) => sock.once('connect', res).once('error', rej));
        return allow(sock);
      },
    });
    const np = await nodeProxy.listen({ host: '127.0.0.1', port: 0 });

    // What control/envoy sends: CONNECT VIP:80 -> inbound-vip internal listener -> RDS -> outbound EDS cluster.
    const targets: Array<[string, string]> = [];
    for (const [kind, s] of Object.entries(SERVICES)) {
      const parent = s.host.replace('-v1.', '.');
      const internal = `inbound-vip|80|http|${parent}`;
      const outbound = `outbound|80||${s.host}`;
      targets.push([`${s.vip}:80`, internal]);
      cp.raw(TYPE.cluster, internal, Cluster.encode(internalCluster(internal)).finish());
      cp.internalListener(internal, `${kind}-routes`);
      cp.cluster(
        outbound,
        [
          {
            address: POD_IP,
            port: s.target,
            // As control/envoy writes them: the tunnel, and Istio's workload metadata of the pod.
            metadata: {
              'envoy.transport_socket_match': { tunnel: 'http' },
              nodemesh: { hbone: `127.0.0.1:${np.port}`, identity: API_ID },
              istio: { workload: 'api-5f6;shop;api;v2;Kubernetes' },
            },
          },
        ],
        s.http2 ? { http2ProtocolOptions: {} } : {},
      );
      cp.routes({
        name: `${kind}-routes`,
        virtualHosts: [
          {
            name: kind,
            domains: ['*'],
            routes: [
              {
                match: { pathSpecifier: { $case: 'prefix', value: '/' } },
                action: { $case: 'route', value: { clusterSpecifier: { $case: 'cluster', value: outbound } } },
              },
            ],
          },
        ],
      });
    }
    cp.raw(TYPE.listener, 'connect_terminate', Listener.encode(connectTerminate(targets)).finish());

    running = await startMeshWaypoint(mesh, address);
    await running.waypoint.ready();
  }, 30_000);

  afterAll(async () => {
    hbone.destroy();
    await running?.stop();
    await nodeProxy?.close(100);
    await cp.stop();
    await web?.close();
    h2server?.close();
    grpcServer.forceShutdown();
    for (const c of cleanups) c();
    mesh?.close();
  });

  const common = {
    reporter: 'waypoint',
    source_workload: 'frontend-7d9',
    source_workload_namespace: 'shop',
    source_principal: CLIENT_ID,
    source_app: 'frontend',
    source_version: 'v3',
    source_canonical_service: 'frontend',
    source_canonical_revision: 'v3',
    source_cluster: 'Kubernetes',
    // From the endpoint's EDS metadata (istio.workload), as Istio's stats filter reads it.
    destination_workload: 'api-5f6',
    destination_workload_namespace: 'shop',
    destination_principal: API_ID,
    destination_app: 'api',
    destination_version: 'v2',
    destination_canonical_service: 'api',
    destination_canonical_revision: 'v2',
    destination_cluster: 'Kubernetes',
    response_flags: '-',
    connection_security_policy: 'mutual_tls',
  };

  it('HTTP/1.1: the service FQDN of the route cluster (not the VIP or Host), request_protocol http', async () => {
    const stream = await tunnel('web');
    const s = stream as unknown as Record<string, unknown>;
    for (const m of ['setKeepAlive', 'setNoDelay', 'setTimeout', 'ref', 'unref']) if (typeof s[m] !== 'function') s[m] = () => stream;
    const status = await new Promise<number>((resolve, reject) => {
      const r = request(
        { createConnection: () => stream as unknown as Socket, path: '/hello', headers: { host: `${SERVICES.web.vip}:80`, connection: 'close' } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      r.on('error', reject);
      r.end();
    });
    expect(status).toBe(200);
    const got = await series(running, { destination_service: SERVICES.web.host });
    expect(got).toEqual([
      {
        ...common,
        destination_service: `web-v1.shop.svc.${TD}`,
        destination_service_name: 'web-v1',
        destination_service_namespace: 'shop',
        request_protocol: 'http',
        response_code: '200',
        grpc_response_status: '',
      },
    ]);
    expect(await series(running, { destination_service: SERVICES.web.vip })).toEqual([]);
    // The same request in the recent-records ring on the metrics port: method and status, no path.
    const recent = await fetch(`http://127.0.0.1:${running.waypoint.ports.metrics}/recent`);
    expect(recent.status).toBe(200);
    const text = await recent.text();
    expect(JSON.parse(text)).toMatchObject({
      kind: 'RecentRecords',
      proxy: 'waypoint',
      records: [{ reporter: 'waypoint', src: { identity: CLIENT_ID }, method: 'GET', status: 200, mtls: true }],
    });
    expect(text).not.toContain('/hello');
  });

  it('h2c: request_protocol http (Istio: http for HTTP/1.1 and HTTP/2)', async () => {
    const stream = await tunnel('h2');
    const session = h2connect(`http://${SERVICES.h2.vip}`, { createConnection: () => stream as unknown as Socket });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const r = session.request({ ':method': 'POST', ':path': '/items', ':authority': `${SERVICES.h2.vip}:80`, 'content-type': 'application/json' });
        let st = 0;
        r.on('response', (h) => (st = Number(h[':status'])));
        r.resume();
        r.on('end', () => resolve(st));
        r.on('error', reject);
        r.end('{}');
      });
      expect(status).toBe(200);
    } finally {
      session.destroy();
    }
    expect(await series(running, { destination_service: SERVICES.h2.host })).toEqual([
      {
        ...common,
        destination_service: SERVICES.h2.host,
        destination_service_name: 'h2',
        destination_service_namespace: 'shop',
        request_protocol: 'http',
        response_code: '200',
        grpc_response_status: '',
      },
    ]);
  });

  it('gRPC: request_protocol grpc and grpc_response_status from the trailers', async () => {
    const stream = await tunnel('rpc');
    const session = h2connect(`http://${SERVICES.rpc.vip}`, { createConnection: () => stream as unknown as Socket });
    const msg = Buffer.from('hello');
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, msg.length]), msg]);
    try {
      const out = await new Promise<{ status: number; grpcStatus: string | undefined; body: Buffer }>((resolve, reject) => {
        const r = session.request({
          ':method': 'POST',
          ':path': '/nm.test.Echo/Echo',
          ':authority': `${SERVICES.rpc.vip}:80`,
          'content-type': 'application/grpc',
          te: 'trailers',
        });
        let status = 0;
        let grpcStatus: string | undefined;
        const parts: Buffer[] = [];
        r.on('response', (h) => (status = Number(h[':status'])));
        r.on('trailers', (t) => (grpcStatus = String(t['grpc-status'])));
        r.on('data', (c: Buffer) => parts.push(c));
        r.on('end', () => resolve({ status, grpcStatus, body: Buffer.concat(parts) }));
        r.on('error', reject);
        r.end(frame);
      });
      expect(out).toEqual({ status: 200, grpcStatus: '0', body: frame });
    } finally {
      session.destroy();
    }
    expect(await series(running, { destination_service: SERVICES.rpc.host })).toEqual([
      {
        ...common,
        destination_service: SERVICES.rpc.host,
        destination_service_name: 'rpc',
        destination_service_namespace: 'shop',
        request_protocol: 'grpc',
        response_code: '200',
        grpc_response_status: '0',
      },
    ]);
  });

  it('without baggage the source workload is unknown, its namespace comes from the SPIFFE ID; baggage naming another namespace is ignored', async () => {
    for (const baggage of ['', 'k8s.namespace.name=kube-system,k8s.deployment.name=coredns,service.name=coredns']) {
      const stream = await tunnel('web', baggage);
      const s = stream as unknown as Record<string, unknown>;
      for (const m of ['setKeepAlive', 'setNoDelay', 'setTimeout', 'ref', 'unref']) if (typeof s[m] !== 'function') s[m] = () => stream;
      await new Promise<void>((resolve, reject) => {
        const r = request({ createConnection: () => stream as unknown as Socket, path: '/', headers: { host: 'web', connection: 'close' } }, (res) => {
          res.resume();
          res.on('end', () => resolve());
        });
        r.on('error', reject);
        r.end();
      });
    }
    const got = await series(running, { destination_service: SERVICES.web.host, source_workload: 'unknown' });
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({
      source_workload_namespace: 'shop',
      source_principal: CLIENT_ID,
      source_app: 'unknown',
      source_version: 'unknown',
      source_canonical_service: 'unknown',
      connection_security_policy: 'mutual_tls',
    });
    const total = (await running.waypoint.metrics.registry.getSingleMetric('istio_requests_total')!.get()).values
      .filter((v) => v.labels.source_workload === 'unknown')
      .reduce((n, v) => n + v.value, 0);
    expect(total).toBe(2);
  });
});
