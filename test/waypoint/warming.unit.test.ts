// A (re)started waypoint and its routes: requests that arrive before their listener's
// RouteConfiguration (RDS) are held until it arrives, as Envoy serves a listener only once its routes
// are warm — not answered 503 "routes … not received yet" — and a 503 comes only after the time
// limit, or at once when too many already wait. The real delta ADS server (test/waypoint/fixture.ts)
// delays RDS by not having the routes yet; HTTP/1.1, h2c and HBONE clients are real.
import { request } from 'node:http';
import { connect } from 'node:net';
import { CliError } from '../../cli/command';
import { parseWarming } from '../../waypoint/cli';
import { Warming } from '../../waypoint/proxy/warming';
import { connect as h2connect } from 'node:http2';
import type { WorkloadCertificate } from '../../common/identity/manager';
import { HboneClient } from '../../common/hbone/client';
import { Listener } from '../../api/gen/envoy/config/listener/v3/listener';
import { Cluster } from '../../api/gen/envoy/config/cluster/v3/cluster';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Waypoint, type WaypointOptions } from '../../waypoint/waypoint';
import { TYPE } from '../../waypoint/xds/resources';
import { until } from '../support/until';
import {
  anyHost,
  backend,
  connectTerminate,
  ControlPlane,
  freePort,
  httpOver,
  internalCluster,
  LOOPBACK,
  MeshCa,
  prefixRoute,
  quiet,
  startPlainWaypoint,
  type Backend,
} from './fixture';

interface Reply {
  status: number;
  body: string;
  ms: number;
}

function get(port: number, path = '/'): Promise<Reply> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port, path, headers: { host: 'web' } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ms: Date.now() - t0 }));
    });
    r.on('error', reject);
    r.end();
  });
}

function h2get(port: number): Promise<Reply> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const s = h2connect(`http://127.0.0.1:${port}`);
    s.on('error', reject);
    const st = s.request({ ':path': '/h2', ':authority': 'web' });
    let status = 0;
    let body = '';
    st.on('response', (h) => (status = Number(h[':status'])));
    st.setEncoding('utf8').on('data', (c: string) => (body += c));
    st.on('end', () => {
      s.close();
      resolve({ status, body, ms: Date.now() - t0 });
    });
    st.on('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ROUTES = 'web-routes';
const webRoutes = anyHost(ROUTES, [prefixRoute('/', 'web')]);

describe('a waypoint holds requests until its listener’s routes arrive (listener warming)', () => {
  let web: Backend;
  const started: Waypoint[] = [];
  const planes: ControlPlane[] = [];

  beforeAll(async () => {
    web = await backend('web');
  });
  afterEach(async () => {
    for (const w of started.splice(0)) await w.stop();
    for (const c of planes.splice(0)) await c.stop();
  });
  afterAll(async () => {
    await web?.close();
  });

  /** A control plane with the listener on `port` (routes by RDS `web-routes`) and the web cluster — but no routes yet. */
  async function withoutRoutes(port: number): Promise<ControlPlane> {
    const cp = new ControlPlane();
    planes.push(cp);
    await cp.start();
    cp.listener('web', port, ROUTES);
    cp.cluster('web', [web.port]);
    return cp;
  }

  /** The waypoint, started and ready (every type received once: the listener is there, its routes are not). */
  async function waypoint(control: string, port: number, extra: Partial<WaypointOptions> = {}): Promise<Waypoint> {
    const wp = await startPlainWaypoint(control, [port], extra);
    started.push(wp);
    return wp;
  }

  it('HTTP/1.1 and h2c requests sent before RDS arrives are held and answered by the backend once it does', async () => {
    const port = await freePort();
    const cp = await withoutRoutes(port);
    const wp = await waypoint(cp.address, port);
    const pending = [get(port, '/a'), get(port, '/b'), h2get(port)];
    await until('three requests held', () => wp.warming.size === 3);
    await sleep(300);
    expect(wp.warming.size).toBe(3); // still waiting: nothing answered them
    const seenBefore = web.seen.length;
    cp.routes(webRoutes);
    const replies = await Promise.all(pending);
    expect(replies.map((r) => [r.status, r.body])).toEqual([
      [200, 'web'],
      [200, 'web'],
      [200, 'web'],
    ]);
    for (const r of replies) expect(r.ms).toBeGreaterThanOrEqual(300);
    expect(
      web.seen
        .slice(seenBefore)
        .map((s) => s.url)
        .sort(),
    ).toEqual(['/a', '/b', '/h2']);
    expect(wp.warming.size).toBe(0);
    // and a request now is not held
    expect((await get(port, '/c')).status).toBe(200);
  });

  it('answers 503 naming the missing routes only after the time limit, counted with response_flags NR', async () => {
    const port = await freePort();
    const cp = await withoutRoutes(port);
    const wp = await waypoint(cp.address, port, { routeWarming: { timeoutMs: 400 } });
    const r = await get(port);
    expect(r.status).toBe(503);
    expect(r.body).toBe(`routes ${ROUTES} not received within 400 ms (the control plane has not sent this RouteConfiguration)`);
    expect(r.ms).toBeGreaterThanOrEqual(380);
    expect(wp.warming.size).toBe(0);
    expect(await wp.metrics.registry.getSingleMetricAsString('istio_requests_total')).toMatch(/response_code="503"[^}]*response_flags="NR"/);
  });

  it('holds at most maxHeld requests: one more is answered 503 at once; a client that goes away frees its place', async () => {
    const port = await freePort();
    const cp = await withoutRoutes(port);
    const wp = await waypoint(cp.address, port, { routeWarming: { maxHeld: 2 } });
    const held = [get(port, '/1'), get(port, '/2')];
    await until('two requests held', () => wp.warming.size === 2);
    const third = await get(port, '/3');
    expect(third.status).toBe(503);
    expect(third.body).toBe(`routes ${ROUTES} not received yet (2 requests already wait for routes)`);
    cp.routes(webRoutes);
    expect((await Promise.all(held)).map((r) => r.status)).toEqual([200, 200]);
    // a listener that changes to routes not sent yet holds again; a held client that hangs up leaves the queue at once
    cp.listener('web', port, 'not-yet');
    await until('the listener to use routes not-yet', () => {
      const l = wp.state.listenerForPort(port);
      return l?.config.kind === 'http' && l.config.rdsName === 'not-yet';
    });
    const leaving = request({ host: '127.0.0.1', port, path: '/leaving', headers: { host: 'web' } });
    leaving.on('error', () => undefined);
    leaving.end();
    await until('one request held', () => wp.warming.size === 1);
    leaving.socket!.resetAndDestroy(); // a reset: a FIN alone leaves the (half-open) request waiting
    await until('the place freed', () => wp.warming.size === 0);
  });

  it('a held HTTP/1.1 client that half-closes (FIN) has gone away: it leaves the queue at once, counted DC, never sent upstream', async () => {
    const port = await freePort();
    const cp = await withoutRoutes(port);
    const wp = await waypoint(cp.address, port);
    const c = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const closed = new Promise<string>((resolve) => {
      let got = '';
      c.on('data', (b: Buffer) => (got += b.toString('latin1')));
      c.on('error', () => undefined);
      c.on('close', () => resolve(got));
    });
    c.write('GET /gone HTTP/1.1\r\nhost: web\r\n\r\n');
    await until('one request held', () => wp.warming.size === 1);
    const t0 = Date.now();
    c.end();
    expect(await closed).toBe('');
    expect(wp.warming.size).toBe(0);
    expect(Date.now() - t0).toBeLessThan(1000); // not the 15 s limit
    expect(await wp.metrics.registry.getSingleMetricAsString('istio_requests_total')).toMatch(/response_code="0"[^}]*response_flags="DC"/);
    cp.routes(webRoutes);
    expect((await get(port, '/after')).status).toBe(200);
    expect(web.seen.map((x) => x.url)).not.toContain('/gone');
  });

  it('maxHeld 0 never holds: a request before its routes is answered 503 at once', async () => {
    const port = await freePort();
    const cp = await withoutRoutes(port);
    await waypoint(cp.address, port, { routeWarming: { maxHeld: 0 } });
    const r = await get(port);
    expect(r.status).toBe(503);
    expect(r.body).toBe(`routes ${ROUTES} not received yet (requests are not held for routes: --warming-max-held 0)`);
    expect(r.ms).toBeLessThan(1000);
  });

  it('refuses warming settings out of range with the setting and its range named, on the CLI and in the API', () => {
    expect(parseWarming('2500', '10')).toEqual({ timeoutMs: 2500, maxHeld: 10 });
    expect(parseWarming(undefined, undefined)).toEqual({ timeoutMs: undefined, maxHeld: undefined });
    expect(parseWarming(undefined, '0')).toEqual({ timeoutMs: undefined, maxHeld: 0 });
    const cli = (t: string | undefined, m: string | undefined): string => {
      try {
        parseWarming(t, m);
      } catch (err) {
        expect(err).toBeInstanceOf(CliError);
        expect((err as CliError).exitCode).toBe(2);
        return (err as Error).message.split('\n')[0];
      }
      return 'accepted';
    };
    expect(cli('0', undefined)).toBe('--warming-timeout-ms 0 is out of range: give 1 to 600000 milliseconds (default 15000)');
    expect(cli('600001', undefined)).toBe('--warming-timeout-ms 600001 is out of range: give 1 to 600000 milliseconds (default 15000)');
    expect(cli('15s', undefined)).toBe('--warming-timeout-ms "15s" is not a whole number');
    expect(cli(undefined, '-1')).toBe('--warming-max-held "-1" is not a whole number');
    expect(cli(undefined, '100001')).toBe('--warming-max-held 100001 is out of range: give 0 (never hold) to 100000 (default 1024)');
    expect(() => new Warming({ timeoutMs: 0.5 })).toThrow(
      new RangeError('the route warming time limit must be a whole number of milliseconds from 1 to 600000, got 0.5'),
    );
    expect(() => new Warming({ maxHeld: Number.NaN })).toThrow(/requests held for routes must be a whole number from 0 \(never hold\) to 100000, got NaN/);
    expect(() => new Waypoint({ name: 'wp', namespace: 'default', control: '127.0.0.1:1', ...LOOPBACK, routeWarming: { timeoutMs: -5 } })).toThrow(RangeError);
  });

  it('stopping answers the held requests at once', async () => {
    const port = await freePort();
    const cp = await withoutRoutes(port);
    const wp = await waypoint(cp.address, port);
    const pending = get(port).catch((err: NodeJS.ErrnoException) => ({ status: 0, body: err.code ?? '', ms: 0 }));
    await until('one request held', () => wp.warming.size === 1);
    await wp.stop();
    started.splice(started.indexOf(wp), 1);
    const r = await pending;
    // answered 503, or its connection closed by the stop: never left hanging
    expect([503, 0]).toContain(r.status);
    expect(wp.warming.size).toBe(0);
  });

  describe('over HBONE, before the first configuration', () => {
    let mesh: MeshCa;
    let ca: ControlPlane;
    let waypointCert: WorkloadCertificate;
    let frontend: WorkloadCertificate;
    const client = new HboneClient({ logger: quiet });
    const cleanups: Array<() => void> = [];

    beforeAll(async () => {
      mesh = await MeshCa.create();
      ca = new ControlPlane();
      await ca.start(0, mesh);
      const a = await mesh.workloadCertificate(ca.address, 'node-wp', 'shop', 'shop-waypoint');
      const f = await mesh.workloadCertificate(ca.address, 'node-a', 'shop', 'frontend');
      [waypointCert, frontend] = [a.cert, f.cert];
      for (const x of [a, f]) cleanups.push(() => (x.manager.close(), x.client.close()));
    }, 30_000);
    afterAll(async () => {
      client.destroy();
      await ca?.stop();
      for (const c of cleanups) c();
      mesh?.close();
    });

    it('a CONNECT that arrives before any xDS response is held, then served once the control plane answers', async () => {
      const xdsPort = await freePort();
      const c = waypointCert;
      const wp = new Waypoint({
        name: 'shop-waypoint',
        namespace: 'shop',
        control: `127.0.0.1:${xdsPort}`, // nothing listens there yet: a restart while the control plane is away
        ...LOOPBACK,
        credentials: {
          current: () => ({ certChain: c.certChainPem, key: c.privateKeyPem, trustBundle: c.trustBundle, spiffeId: c.spiffeId, notAfter: c.notAfter }),
        },
      });
      started.push(wp);
      await wp.start();
      const tunnel = client.open({
        source: { certChain: frontend.certChainPem, key: frontend.privateKeyPem },
        trustBundle: frontend.trustBundle,
        destination: `127.0.0.1:${wp.ports.hbone}`,
        expectedIdentity: c.spiffeId,
        authority: '10.96.0.50:80',
        timeoutMs: 10_000,
      });
      const t0 = Date.now();
      await sleep(500);
      // The control plane comes up with the waypoint's configuration.
      const cp = new ControlPlane();
      planes.push(cp);
      const internal = 'inbound-vip|80|http|web.shop.svc.cluster.local';
      cp.raw(TYPE.listener, 'connect_terminate', Listener.encode(connectTerminate([['10.96.0.50:80', internal]])).finish());
      cp.raw(TYPE.cluster, internal, Cluster.encode(internalCluster(internal)).finish());
      cp.internalListener(internal, ROUTES);
      cp.cluster('web', [web.port]);
      cp.routes(webRoutes);
      await cp.start(xdsPort);
      const r = await httpOver(await tunnel, '/over-hbone', 'web.shop.svc.cluster.local');
      expect([r.status, r.body]).toEqual([200, 'web']);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(500);
    });
  });
});
