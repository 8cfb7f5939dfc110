// The waypoint's HBONE paths with the real CA (control/ca) and certificate service on loopback:
// the waypoint fetches its own certificate as `nodemesh waypoint run --token-file --trust-bundle`
// does, serves HBONE with it, routes a CONNECT to VIP:port by the connect_terminate listener,
// authorizes by the HBONE peer's SPIFFE ID, tunnels upstream to mesh endpoints presenting its
// identity and verifying theirs, serves tcp_proxy over HBONE, and rotates at half-life.
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import type { ClientHttp2Stream } from 'node:http2';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../../api/gen/envoy/config/cluster/v3/cluster';
import { Listener } from '../../api/gen/envoy/config/listener/v3/listener';
import { RBAC_Action } from '../../api/gen/envoy/config/rbac/v3/rbac';
import { RBAC } from '../../api/gen/envoy/extensions/filters/http/rbac/v3/rbac';
import { RBAC as NetworkRBAC } from '../../api/gen/envoy/extensions/filters/network/rbac/v3/rbac';
import { HboneClient } from '../../common/hbone/client';
import { TunnelRefusedError } from '../../common/hbone/errors';
import { allow, HboneServer, type TunnelRequest } from '../../common/hbone/server';
import type { WorkloadCertificate } from '../../common/identity/manager';
import { pack } from '../../waypoint/config/typed';
import type { RunningWaypoint } from '../../waypoint/run';
import { TYPE } from '../../waypoint/xds/resources';
import { until } from '../support/until';
import { backend, connectTerminate, ControlPlane, httpOver, internalCluster, MeshCa, quiet, startMeshWaypoint, type Backend } from './fixture';

const WEB = 'web.shop.svc.cluster.local';
const OTHER = 'other.shop.svc.cluster.local';
const WAYPOINT_ID = 'spiffe://cluster.local/ns/shop/sa/shop-waypoint';
const FRONTEND_ID = 'spiffe://cluster.local/ns/shop/sa/frontend';

const onlyFrontend = {
  action: RBAC_Action.ALLOW,
  policies: {
    'ns[shop]-policy[allow-frontend]-rule[0]': {
      permissions: [{ rule: { $case: 'any' as const, value: true } }],
      principals: [
        { identifier: { $case: 'authenticated' as const, value: { principalName: { matchPattern: { $case: 'exact' as const, value: FRONTEND_ID } } } } },
      ],
    },
  },
};

describe('waypoint HBONE with its own identity from the real CA', () => {
  const cp = new ControlPlane();
  let mesh: MeshCa;
  let running: RunningWaypoint;
  let hbonePort: number;
  let web: Backend, other: Backend, meshApp: Backend;
  let echo: NetServer;
  let frontend: WorkloadCertificate, stranger: WorkloadCertificate;
  let nodeProxy: HboneServer;
  const nodeProxyRequests: TunnelRequest[] = [];
  const client = new HboneClient({ logger: quiet });
  const cleanups: Array<() => void> = [];

  const tunnel = (who: WorkloadCertificate, authority: string): Promise<ClientHttp2Stream> =>
    client.open({
      source: { certChain: who.certChainPem, key: who.privateKeyPem },
      trustBundle: who.trustBundle,
      destination: `127.0.0.1:${hbonePort}`,
      expectedIdentity: WAYPOINT_ID,
      authority,
      timeoutMs: 3000,
    });

  beforeAll(async () => {
    mesh = await MeshCa.create();
    await cp.start(0, mesh);
    const address = `127.0.0.1:${cp.port}`;
    web = await backend('web');
    other = await backend('other');
    meshApp = await backend('mesh-app');
    echo = createNetServer({ allowHalfOpen: true }, (s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));

    // Client identities, as node proxies obtain them for their workloads.
    const f = await mesh.workloadCertificate(address, 'node-a', 'shop', 'frontend');
    const s = await mesh.workloadCertificate(address, 'node-a', 'elsewhere', 'stranger');
    const w = await mesh.workloadCertificate(address, 'node-b', 'shop', 'web');
    [frontend, stranger] = [f.cert, s.cert];
    for (const x of [f, s, w]) cleanups.push(() => (x.manager.close(), x.client.close()));
    // The destination's node proxy: HBONE server with web's identity, connects to the app.
    nodeProxy = new HboneServer({
      credentials: { certChain: w.cert.certChainPem, key: w.cert.privateKeyPem, trustBundle: w.cert.trustBundle },
      logger: quiet,
      handler: async (r) => {
        nodeProxyRequests.push(r);
        const sock = netConnect({ host: '127.0.0.1', port: meshApp.port });
        await new Promise((res, rej) => sock.once('connect', res).once('error', rej));
        return allow(sock);
      },
    });
    const np = await nodeProxy.listen({ host: '127.0.0.1', port: 0 });

    // What control/envoy sends a waypoint: connect_terminate, internal listeners, their clusters.
    const webHttp = `inbound-vip|80|http|${WEB}`;
    const otherHttp = `inbound-vip|80|http|${OTHER}`;
    const webTcp = `inbound-vip|5432|tcp|${WEB}`;
    cp.raw(
      TYPE.listener,
      'connect_terminate',
      Listener.encode(
        connectTerminate([
          ['10.96.0.50:80', webHttp],
          ['10.96.0.51:80', otherHttp],
          ['10.96.0.50:5432', webTcp],
        ]),
      ).finish(),
    );
    for (const n of [webHttp, otherHttp, webTcp]) cp.raw(TYPE.cluster, n, Cluster.encode(internalCluster(n)).finish());
    cp.internalListener(webHttp, `${WEB}:80`, [{ name: 'envoy.filters.http.rbac', typedConfig: pack(RBAC, RBAC.fromPartial({ rules: onlyFrontend })) }]);
    cp.internalListener(otherHttp, `${OTHER}:80`);
    cp.tcpListener(webTcp, undefined, 'echo', [NetworkRBAC.fromPartial({ statPrefix: 'tcp', rules: onlyFrontend })]);
    cp.cluster('echo', [(echo.address() as AddressInfo).port]);
    cp.cluster('web', [web.port]);
    cp.cluster('other', [other.port]);
    const hboneMeta = (identity: string) => ({ 'envoy.transport_socket_match': { tunnel: 'http' }, nodemesh: { hbone: `127.0.0.1:${np.port}`, identity } });
    cp.cluster('web-mesh', [{ address: '10.200.2.7', port: 8080, metadata: hboneMeta('spiffe://cluster.local/ns/shop/sa/web') }]);
    cp.cluster('web-impostor', [{ address: '10.200.2.7', port: 8080, metadata: hboneMeta('spiffe://cluster.local/ns/shop/sa/payments') }]);
    const prefix = (p: string, cluster: string) => ({
      match: { pathSpecifier: { $case: 'prefix' as const, value: p } },
      action: { $case: 'route' as const, value: { clusterSpecifier: { $case: 'cluster' as const, value: cluster } } },
    });
    cp.routes({
      name: `${WEB}:80`,
      virtualHosts: [{ name: WEB, domains: ['*'], routes: [prefix('/mesh', 'web-mesh'), prefix('/impostor', 'web-impostor'), prefix('/', 'web')] }],
    });
    cp.routes({ name: `${OTHER}:80`, virtualHosts: [{ name: OTHER, domains: ['*'], routes: [prefix('/', 'other')] }] });

    // The waypoint, started as the CLI starts it (token file + trust bundle file).
    running = await startMeshWaypoint(mesh, address, 64);
    hbonePort = running.waypoint.ports.hbone!;
    await running.waypoint.ready();
  }, 30_000);

  afterAll(async () => {
    client.destroy();
    await running?.stop();
    await nodeProxy?.close(100);
    await cp.stop();
    echo?.close();
    for (const b of [web, other, meshApp]) await b?.close();
    for (const c of cleanups) c();
    mesh?.close();
  });

  it('has its own SPIFFE identity from the CA and presents it on 15008', () => {
    expect(running.identity!.spiffeId).toBe(WAYPOINT_ID);
    expect(running.identity!.current()!.spiffeId).toBe(WAYPOINT_ID);
  });

  it('routes CONNECT VIP:port by the connect_terminate listener (two Services on one port) and passes the peer identity on', async () => {
    const r1 = await httpOver(await tunnel(frontend, '10.96.0.50:80'), '/hello', WEB);
    expect([r1.status, r1.body]).toEqual([200, 'web']);
    expect(web.seen[web.seen.length - 1]!.headers['x-forwarded-client-cert']).toBe(`By=;URI=${FRONTEND_ID}`);
    const r2 = await httpOver(await tunnel(stranger, '10.96.0.51:80'), '/hello', OTHER);
    expect([r2.status, r2.body]).toEqual([200, 'other']);
    await expect(tunnel(frontend, '10.96.0.99:80')).rejects.toMatchObject({ status: 404 }); // not a Service of this waypoint
  });

  it('RBAC by principal: the allowed peer gets 200, another identity 403, counted with response_flags "-" as Envoy does', async () => {
    expect((await httpOver(await tunnel(frontend, '10.96.0.50:80'), '/', WEB)).status).toBe(200);
    const denied = await httpOver(await tunnel(stranger, '10.96.0.50:80'), '/', WEB);
    expect([denied.status, denied.body]).toEqual([403, 'RBAC: access denied']);
    const m = running.waypoint.metrics.registry;
    expect(await m.getSingleMetricAsString('nodemesh_waypoint_rbac_denied_total')).toMatch(/policy=""} 1/);
    const req = await m.getSingleMetricAsString('istio_requests_total');
    const line = req.split('\n').find((l) => l.includes('response_code="403"'))!;
    expect(line).toContain('source_principal="spiffe://cluster.local/ns/elsewhere/sa/stranger"');
    expect(line).toContain('source_workload="unknown"');
    expect(line).toContain('connection_security_policy="mutual_tls"');
    expect(line).toContain('response_flags="-"');
  });

  it('reaches a mesh endpoint over HBONE presenting the waypoint identity, and refuses an endpoint whose identity differs', async () => {
    const before = nodeProxyRequests.length;
    const r = await httpOver(await tunnel(frontend, '10.96.0.50:80'), '/mesh/x', WEB);
    expect([r.status, r.body]).toEqual([200, 'mesh-app']);
    const np = nodeProxyRequests[before]!;
    expect(np.peerSpiffeId).toBe(WAYPOINT_ID);
    expect(np.authority).toBe('10.200.2.7:8080');
    const bad = await httpOver(await tunnel(frontend, '10.96.0.50:80'), '/impostor', WEB);
    expect(bad.status).toBe(503);
    expect(await running.waypoint.metrics.registry.getSingleMetricAsString('istio_requests_total')).toMatch(/response_code="503"[^}]*response_flags="UF"/);
    expect(nodeProxyRequests.length).toBe(before + 1); // the impostor check failed at the TLS handshake
  });

  it('serves a tcp_proxy listener over HBONE: bytes intact for the allowed peer, CONNECT refused 403 for another', async () => {
    const data = randomBytes(1024 * 1024 + 3);
    const stream = await tunnel(frontend, '10.96.0.50:5432');
    const got = await new Promise<Buffer>((resolve, reject) => {
      const parts: Buffer[] = [];
      stream.on('data', (c: Buffer) => parts.push(c));
      stream.on('end', () => resolve(Buffer.concat(parts)));
      stream.on('error', reject);
      stream.end(data);
    });
    expect(createHash('sha256').update(got).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    const err = await tunnel(stranger, '10.96.0.50:5432').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TunnelRefusedError);
    expect((err as TunnelRefusedError).status).toBe(403);
  });

  it('renews its certificate at half-life and serves new HBONE connections with the new one', async () => {
    const serialNow = async (): Promise<string> =>
      new Promise((resolve, reject) => {
        const s = tlsConnect(
          {
            host: '127.0.0.1',
            port: hbonePort,
            cert: frontend.certChainPem,
            key: frontend.privateKeyPem,
            ca: frontend.trustBundle.pem,
            ALPNProtocols: ['h2'],
            checkServerIdentity: () => undefined,
          },
          () => {
            const raw = s.getPeerCertificate().raw;
            s.destroy();
            const x = new X509Certificate(raw);
            expect(x.subjectAltName).toContain(`URI:${WAYPOINT_ID}`);
            resolve(x.serialNumber);
          },
        );
        s.on('error', reject);
      });
    const first = await serialNow();
    // certTtlSeconds 64 with the CA's 60 s back-dating: a 124 s lifetime, renewed ~2 s after issue.
    await until('a rotated certificate (new serial)', async () => (await serialNow()) !== first, 10_000);
    // Still serving with the renewed certificate.
    expect((await httpOver(await tunnel(frontend, '10.96.0.51:80'), '/', OTHER)).status).toBe(200);
  }, 15_000);
});
