// The node proxy with NODEMESH_HBONE_ENGINE=native (docs/hbone.md, "The native engine"), end to end
// in lab 'nmnh': both node proxies run the engine (their /stats say so) for outbound tunnels and for
// 15008, and what the default engine guarantees holds: bytes intact across nodes 0 B to 64 MiB both
// ways at once, the client's SPIFFE ID on the server side, a denied tunnel refused and counted, an
// open tunnel closed by a policy change, and no stream left in the engine afterwards.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kindInfo } from '../../control/resources/kinds';
import type { LabTopology } from '../../lab/state';
import { spawnInLab } from '../../lab/spawn';
import { labUp } from '../../lab/up';
import { adminJson, closeServer, echoServer, runClient, waitFor } from '../capture/harness';
import {
  metricSum,
  metricsText,
  startControlPlane,
  startMeshProxy,
  stopProc,
  tearDownMeshLab,
  waitMeshReady,
  type ControlPlaneProc,
  type Proc,
} from '../dataplane/mesh-lab';
import { privilegedDescribe } from '../support/privileged';
import { scaled } from '../support/speed';

const LAB = 'nmnh';
const NS = 'nh';
const TD = 'cluster.local';
const CLIENT_ID = `spiffe://${TD}/ns/${NS}/sa/client`;

interface MeshStats {
  mesh?: { hboneEngine?: string; nativeHbone?: { connections: number; streams: number } };
}

privilegedDescribe('lab', 'node proxies on the native HBONE engine (lab nmnh)', () => {
  let topo: LabTopology;
  let cp: ControlPlaneProc | undefined;
  const proxies: Record<string, Proc | undefined> = {};
  const servers: Array<Awaited<ReturnType<typeof echoServer>>> = [];
  const pod = (name: string) => topo.pods.find((p) => p.name === name)!;
  const workload = (name: string, sa: string, app: string) => ({
    apiVersion: 'nodemesh.io/v1alpha1',
    kind: 'Workload',
    metadata: { name, namespace: NS, labels: { app } },
    spec: {
      serviceAccount: sa,
      node: pod(name).node,
      addresses: [pod(name).ip],
      netnsPath: pod(name).netnsPath,
      cgroupPath: pod(name).cgroup,
      ports: [{ name: 'echo', port: 9000 }],
    },
  });
  const policy = (name: string, rule: unknown) => ({
    apiVersion: 'security.nodemesh.io/v1alpha1',
    kind: 'AuthorizationPolicy',
    metadata: { name, namespace: NS },
    spec: { selector: { matchLabels: { app: 'echo' } }, action: 'DENY', rules: [rule] },
  });
  const node2Policies = (names: string[]) =>
    waitFor(`node2 to hold policies [${names}]`, async () => {
      const p = await adminJson<Array<{ name: string }>>(topo, 'node2', '/policies');
      return JSON.stringify(p.map((x) => x.name).sort()) === JSON.stringify([...names].sort()) ? true : undefined;
    });

  beforeAll(async () => {
    ({ state: topo } = await labUp({ lab: LAB, nodes: 2, podsPerNode: 2 }));
    cp = await startControlPlane(topo, ['node1', 'node2']);
    await cp.api.apply([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'nodemesh.io/dataplane-mode': 'ambient' } } },
      workload('pod1-1', 'client', 'client'),
      workload('pod1-2', 'other', 'other'),
      workload('pod2-1', 'echo', 'echo'),
    ]);
    servers.push(await echoServer(pod('pod2-1').netnsPath, 9000));
    // the node proxies inherit the environment (lab/spawn.ts)
    const before = process.env.NODEMESH_HBONE_ENGINE;
    process.env.NODEMESH_HBONE_ENGINE = 'native';
    try {
      for (const n of ['node1', 'node2']) proxies[n] = startMeshProxy(topo, cp, n);
    } finally {
      if (before === undefined) delete process.env.NODEMESH_HBONE_ENGINE;
      else process.env.NODEMESH_HBONE_ENGINE = before;
    }
    await Promise.all(['node1', 'node2'].map((n) => waitMeshReady(topo, n, proxies[n]!)));
  }, scaled(120_000));

  afterAll(async () => {
    for (const s of servers) await closeServer(s);
    for (const n of ['node1', 'node2']) await stopProc(proxies[n]);
    await tearDownMeshLab(LAB, topo, ['node1', 'node2'], cp);
  }, scaled(60_000));

  it('runs the native engine in both node proxies', async () => {
    for (const n of ['node1', 'node2']) expect((await adminJson<MeshStats>(topo, n, '/stats')).mesh?.hboneEngine).toBe('native');
  });

  it(
    'carries bytes intact across nodes, 0 B to 64 MiB, both ways at once, through the engine on both sides',
    async () => {
      for (const size of [0, 1, 65_536, 1 << 20, 16 << 20, 64 << 20]) {
        const [r] = await runClient(topo, 'pod1-1', pod('pod2-1').ip, 9000, size, 1, 90_000);
        expect(r, `size ${size}: ${JSON.stringify(r)}`).toMatchObject({ ok: true, sent: size, received: size });
        expect(r!.receivedSha).toBe(r!.sentSha);
        expect(r!.peer).toBe('127.0.0.1:15001'); // captured
      }
      const results = await runClient(topo, 'pod1-1', pod('pod2-1').ip, 9000, 20_000, 100, 90_000);
      const bad = results.filter((r) => !r.ok || r.receivedSha !== r.sentSha || r.received !== 20_000);
      expect(bad, JSON.stringify(bad.slice(0, 3))).toEqual([]);
      // the destination's books: the client's SPIFFE ID, the bytes the engine counted
      const m = await metricsText(topo, 'node2');
      expect(metricSum(m, 'istio_tcp_received_bytes_total', { reporter: 'destination', source_principal: CLIENT_ID })).toBeGreaterThanOrEqual(81 << 20);
    },
    scaled(180_000),
  );

  it(
    'names the client’s SPIFFE ID on an open tunnel, and the source side says the engine carried it',
    async () => {
      const held = runClient(topo, 'pod1-1', pod('pod2-1').ip, 9000, 64 << 20, 1, 90_000);
      const inbound = await waitFor('an inbound HBONE connection on node2', async () => {
        const list = await adminJson<Array<{ direction: string; details?: { protocol?: string; peerIdentity?: string } }>>(topo, 'node2', '/connections');
        return list.find((c) => c.direction === 'inbound' && c.details?.protocol === 'HBONE');
      });
      expect(inbound.details?.peerIdentity).toBe(CLIENT_ID);
      const outbound = await waitFor('the outbound HBONE connection on node1', async () => {
        const list = await adminJson<Array<{ direction: string; details?: { protocol?: string; engine?: string } }>>(topo, 'node1', '/connections');
        return list.find((c) => c.direction === 'outbound' && c.details?.protocol === 'HBONE');
      });
      expect(outbound.details?.engine).toBe('native');
      const [r] = await held;
      expect(r).toMatchObject({ ok: true, received: 64 << 20 });
    },
    scaled(120_000),
  );

  it(
    'refuses a tunnel the destination policy denies, and counts it',
    async () => {
      await cp!.api.apply([policy('echo-deny-other', { from: [{ source: { principals: [`${TD}/ns/${NS}/sa/other`] } }] })]);
      await node2Policies(['echo-deny-other']);
      const [denied] = await runClient(topo, 'pod1-2', pod('pod2-1').ip, 9000, 1000);
      expect(denied!.ok).toBe(false);
      const [allowed] = await runClient(topo, 'pod1-1', pod('pod2-1').ip, 9000, 1000);
      expect(allowed).toMatchObject({ ok: true, received: 1000 });
      const m1 = await metricsText(topo, 'node1');
      expect(
        metricSum(m1, 'istio_tcp_connections_closed_total', { reporter: 'source', source_workload: 'pod1-2', response_flags: 'DENY' }),
      ).toBeGreaterThanOrEqual(1);
      await cp!.api.delete(kindInfo('AuthorizationPolicy')!, 'echo-deny-other', NS);
      await node2Policies([]);
    },
    scaled(60_000),
  );

  it(
    'closes an open tunnel that a policy change no longer allows, and leaves no stream in the engine',
    async () => {
      const held = holdTunnel(topo, 'pod1-1', pod('pod2-1').ip, 9000, 30_000);
      await waitFor('the tunnel on node2', async () => {
        const list = await adminJson<Array<{ direction: string }>>(topo, 'node2', '/connections');
        return list.some((c) => c.direction === 'inbound') ? true : undefined;
      });
      const t0 = Date.now();
      await cp!.api.apply([policy('echo-deny-client', { from: [{ source: { principals: [`${TD}/ns/${NS}/sa/client`] } }] })]);
      expect(await held).not.toBe('end');
      expect(Date.now() - t0).toBeLessThan(scaled(10_000));
      const m = await metricsText(topo, 'node2');
      expect(metricSum(m, 'nodemesh_policy_connections_closed_total', { policy: `${NS}/echo-deny-client` })).toBe(1);
      for (const n of ['node1', 'node2'])
        await waitFor(`no stream left in ${n}'s engine`, async () =>
          (await adminJson<MeshStats>(topo, n, '/stats')).mesh?.nativeHbone?.streams === 0 ? true : undefined,
        );
      await cp!.api.delete(kindInfo('AuthorizationPolicy')!, 'echo-deny-client', NS);
      await node2Policies([]);
    },
    scaled(120_000),
  );
});

/** A captured connection from `podName` that sends a byte a second and reads; resolves with how it ended ('end', or the error code). */
function holdTunnel(topo: LabTopology, podName: string, host: string, port: number, holdMs: number): Promise<string> {
  const script = `
const s = require('net').connect({ host: process.argv[1], port: Number(process.argv[2]) });
const t = setInterval(() => s.write('x'), 1000);
s.on('data', () => {});
s.on('end', () => { console.log('end'); process.exit(0); });
s.on('error', (e) => { console.log(e.code || e.message); process.exit(0); });
setTimeout(() => { console.log('held'); process.exit(0); }, Number(process.argv[3]));`;
  const child = spawnInLab(topo, podName, [process.execPath, '-e', script, host, String(port), String(scaled(holdMs))], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => child.once('exit', () => resolve(out.trim() || 'no output')));
}
