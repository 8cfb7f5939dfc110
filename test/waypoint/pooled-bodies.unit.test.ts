// HTTP/1.1 request bodies over the waypoint's pooled upstream connections: large uploads, then many
// small POSTs at concurrency, each body must reach the backend whole and each answer be 200.
import { createHash, randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { connect as netConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allow, HboneServer } from '../../common/hbone/server';
import type { RunningWaypoint } from '../../waypoint/run';
import type { Waypoint } from '../../waypoint/waypoint';
import { until } from '../support/until';
import { backend, ControlPlane, freePort, MeshCa, quiet, startMeshWaypoint, startPlainWaypoint, type Backend } from './fixture';

const MiB = 1024 * 1024;

interface Answer {
  status: number;
  body: string;
}

function post(port: number, agent: Agent, body: Buffer): Promise<Answer> {
  return postTo(port, agent, '/upload', body);
}

function postTo(port: number, agent: Agent, path: string, body: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const r = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path,
        agent,
        headers: { host: 'web', 'content-type': 'application/octet-stream', 'content-length': body.length },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString() }));
      },
    );
    r.on('error', reject);
    r.end(body);
  });
}

async function inParallel<T>(n: number, concurrency: number, one: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await one(i);
      }
    }),
  );
  return out;
}

/** Answers with the size and sha256 of the body it read, as the lab's sample app does; `?close`: closes the connection 50 ms after answering (as a keep-alive timeout would). */
function hashingBackend(): Promise<Backend> {
  return backend('web', (s, res) => {
    if (s.url.endsWith('?close')) res.once('finish', () => setTimeout(() => res.socket?.end(), 50));
    const body = JSON.stringify({ bytes: s.body.length, sha256: createHash('sha256').update(s.body).digest('hex') });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    return true;
  });
}

const route = (cluster: string) => ({
  name: 'web-routes',
  virtualHosts: [
    {
      name: 'web',
      domains: ['*'],
      routes: [
        {
          match: { pathSpecifier: { $case: 'prefix' as const, value: '/' } },
          action: { $case: 'route' as const, value: { clusterSpecifier: { $case: 'cluster' as const, value: cluster } } },
        },
      ],
    },
  ],
});

async function uploadsThenSmallPosts(port: number): Promise<void> {
  const big = randomBytes(32 * MiB);
  const bigSha = createHash('sha256').update(big).digest('hex');
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  try {
    const ups = await Promise.all([post(port, agent, big), post(port, agent, big)]);
    for (const u of ups) expect([u.status, JSON.parse(u.body)]).toEqual([200, { bytes: 32 * MiB, sha256: bigSha }]);
    const small = randomBytes(1024);
    const smallSha = createHash('sha256').update(small).digest('hex');
    const answers = await inParallel(200, 4, () => post(port, agent, small));
    const bad = answers.filter((a) => a.status !== 200);
    expect(bad.slice(0, 3)).toEqual([]);
    for (const a of answers) expect(JSON.parse(a.body)).toEqual({ bytes: 1024, sha256: smallSha });
  } finally {
    agent.destroy();
  }
}

describe('HTTP/1.1 bodies over pooled HBONE upstream tunnels', () => {
  const cp = new ControlPlane();
  let mesh: MeshCa;
  let running: RunningWaypoint;
  let web: Backend;
  let nodeProxy: HboneServer;
  let port: number;
  const cleanups: Array<() => void> = [];

  beforeAll(async () => {
    mesh = await MeshCa.create();
    await cp.start(0, mesh);
    web = await hashingBackend();
    const w = await mesh.workloadCertificate(cp.address, 'node-b', 'shop', 'web');
    cleanups.push(() => (w.manager.close(), w.client.close()));
    // The destination's node proxy: HBONE in, a TCP connection to the app per tunnel.
    nodeProxy = new HboneServer({
      credentials: { certChain: w.cert.certChainPem, key: w.cert.privateKeyPem, trustBundle: w.cert.trustBundle },
      logger: quiet,
      handler: async () => {
        const sock = netConnect({ host: '127.0.0.1', port: web.port, allowHalfOpen: true });
        await new Promise((res, rej) => sock.once('connect', res).once('error', rej));
        return allow(sock);
      },
    });
    const np = await nodeProxy.listen({ host: '127.0.0.1', port: 0 });
    port = await freePort();
    cp.cluster('web-mesh', [
      {
        address: '10.200.2.2',
        port: 8080,
        metadata: {
          'envoy.transport_socket_match': { tunnel: 'http' },
          nodemesh: { hbone: `127.0.0.1:${np.port}`, identity: 'spiffe://cluster.local/ns/shop/sa/web' },
        },
      },
    ]);
    cp.listener('web-listener', port, 'web-routes');
    cp.routes(route('web-mesh'));
    running = await startMeshWaypoint(mesh, cp.address);
    await running.waypoint.ready();
    await until('the waypoint listener', () => running.waypoint.listenerAddress(port) !== undefined);
  }, 30_000);

  afterAll(async () => {
    await running?.stop();
    await nodeProxy?.close(100);
    await cp.stop();
    await web?.close();
    for (const c of cleanups) c();
    mesh?.close();
  });

  it('two 32 MiB uploads, then 200 1 KiB POSTs at concurrency 4: every body whole, every answer 200', () => uploadsThenSmallPosts(port), 60_000);

  it('keeps its tunnels: 50 POSTs one after another open at most one more tunnel (the HTTP/1.1 pool runs over HBONE)', async () => {
    const stats = running.waypoint.transport.stats;
    const before = stats.hboneTunnels;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const small = randomBytes(100);
      for (let i = 0; i < 50; i++) expect((await post(port, agent, small)).status).toBe(200);
    } finally {
      agent.destroy();
    }
    expect(stats.hboneTunnels - before).toBeLessThanOrEqual(1);
  }, 30_000);

  it('does not reuse a tunnel the app closed while it was idle: the next request gets a new one and a 200', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const small = randomBytes(10);
      for (let i = 0; i < 3; i++) {
        expect((await postTo(port, agent, '/upload?close', small)).status).toBe(200);
        await new Promise((r) => setTimeout(r, 300)); // the app closes its side meanwhile
      }
    } finally {
      agent.destroy();
    }
  }, 30_000);
});

describe('HTTP/1.1 bodies over pooled upstream connections', () => {
  const cp = new ControlPlane();
  let wp: Waypoint;
  let web: Backend;
  let port: number;

  beforeAll(async () => {
    // Answers with the size and sha256 of the body it read, as the lab's sample app does.
    web = await backend('web', (s, res) => {
      const body = JSON.stringify({ bytes: s.body.length, sha256: createHash('sha256').update(s.body).digest('hex') });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return true;
    });
    await cp.start();
    port = await freePort();
    cp.cluster('web', [web.port]);
    cp.listener('web-listener', port, 'web-routes');
    cp.routes(route('web'));
    wp = await startPlainWaypoint(cp.address, [port]);
  }, 20_000);

  afterAll(async () => {
    await wp?.stop();
    await cp.stop();
    await web?.close();
  });

  it('two 32 MiB uploads, then 200 1 KiB POSTs at concurrency 4: every body whole, every answer 200', () => uploadsThenSmallPosts(port), 60_000);
});
