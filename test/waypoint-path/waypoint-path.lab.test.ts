// Waypoints in the traffic path, end to end in lab 'nmwp': the control plane, node proxies on
// node1 and node2 (--control mode) and `nodemesh waypoint run` in its own pod (pod1-2, not
// enrolled: it terminates HBONE itself). The Service `api` uses the waypoint; an HTTPRoute splits
// it 90/10 between api-v1 (pod2-1) and api-v2 (pod2-2); AuthorizationPolicies on the Service
// (targetRefs) allow GET and deny DELETE. From the enrolled client (pod1-1): requests go through
// the waypoint (split, GET 200, DELETE 403), the backends cannot be reached around the waypoint
// (the node proxy refuses any peer but the waypoint, and plaintext), and an L7 policy on a
// workload without a waypoint denies everything with the reason in the node proxy's log (and
// still does with one); attaching a waypoint closes open direct connections; the client's node
// proxy refuses a waypoint address that presents another identity than its Workload's.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { LabTopology } from '../../lab/state';
import { labUp } from '../../lab/up';
import { privilegedDescribe } from '../support/privileged';
import { adminJson, holdClient, httpGetInNetns, waitFor } from '../capture/harness';
import { kindInfo } from '../../control/resources/kinds';
import {
  metricSum,
  metricsText,
  startControlPlane,
  startMeshProxy,
  keepLogs,
  stopProc,
  tearDownMeshLab,
  waitMeshReady,
  type ControlPlaneProc,
  type Proc,
} from '../dataplane/mesh-lab';
import { closeBackend, httpBackend, httpFromPod, startWaypoint, tcpFromPod, waitWaypointReady, type Backend, type HttpResult } from './harness';
import { scaled } from '../support/speed';

const LAB = 'nmwp';
const NS = 'wp';
const TD = 'cluster.local';
const API_VIP = '10.96.0.40';
const PLAIN_VIP = '10.96.0.43';
const CLIENT_ID = `spiffe://${TD}/ns/${NS}/sa/client`;
const WAYPOINT_ID = `spiffe://${TD}/ns/${NS}/sa/waypoint`;
const NODES = ['node1', 'node2'];

privilegedDescribe('lab', 'waypoints in the traffic path: HBONE to the waypoint, L7 routing and policy, no bypass (lab nmwp)', () => {
  let topo: LabTopology;
  let cp: ControlPlaneProc | undefined;
  let waypoint: Proc | undefined;
  const proxies: Record<string, Proc | undefined> = {};
  const backends: Backend[] = [];
  const pod = (name: string) => topo.pods.find((p) => p.name === name)!;

  const workload = (name: string, sa: string, labels: Record<string, string>) => ({
    apiVersion: 'nodemesh.io/v1alpha1',
    kind: 'Workload',
    metadata: { name, namespace: NS, labels },
    spec: {
      serviceAccount: sa,
      node: pod(name).node,
      addresses: [pod(name).ip],
      netnsPath: pod(name).netnsPath,
      cgroupPath: pod(name).cgroup,
      ports: [{ name: 'http', port: 8080 }],
    },
  });
  const service = (name: string, vip: string, selector: Record<string, string>, labels: Record<string, string> = {}) => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: NS, labels },
    spec: { clusterIP: vip, selector, ports: [{ name: 'http', port: 80, targetPort: 8080, appProtocol: 'http' }] },
  });
  const logs = () => Object.fromEntries(Object.entries({ ...proxies, waypoint, control: cp }).map(([k, p]) => [k, p?.log() ?? '']));
  const tail = (name: string) => (logs()[name] ?? '').slice(-3000);

  beforeAll(async () => {
    ({ state: topo } = await labUp({ lab: LAB, nodes: 2, podsPerNode: 3 }));
    cp = await startControlPlane(topo, NODES);
    await cp.api.apply([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'nodemesh.io/dataplane-mode': 'ambient' } } },
      workload('pod1-1', 'client', { app: 'client' }),
      // The waypoint's own pod: its Gateway's workload (service account = Gateway name), not
      // captured — it terminates HBONE on 15008 itself.
      workload('pod1-2', 'waypoint', { 'gateway.networking.k8s.io/gateway-name': 'waypoint', 'nodemesh.io/dataplane-mode': 'none' }),
      workload('pod2-1', 'api', { app: 'api', version: 'v1' }),
      workload('pod2-2', 'api', { app: 'api', version: 'v2' }),
      workload('pod2-3', 'plain', { app: 'plain' }),
      // pod1-3 is outside the mesh: no Workload.
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'Gateway',
        metadata: { name: 'waypoint', namespace: NS, labels: { 'nodemesh.io/waypoint-for': 'service' } },
        spec: { gatewayClassName: 'nodemesh-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
      },
      service('api', API_VIP, { app: 'api' }, { 'nodemesh.io/use-waypoint': 'waypoint' }),
      service('api-v1', '10.96.0.41', { app: 'api', version: 'v1' }),
      service('api-v2', '10.96.0.42', { app: 'api', version: 'v2' }),
      service('plain', PLAIN_VIP, { app: 'plain' }),
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name: 'api-split', namespace: NS },
        spec: {
          parentRefs: [{ group: '', kind: 'Service', name: 'api', port: 80 }],
          rules: [
            {
              backendRefs: [
                { name: 'api-v1', port: 80, weight: 90 },
                { name: 'api-v2', port: 80, weight: 10 },
              ],
            },
          ],
        },
      },
      {
        apiVersion: 'security.nodemesh.io/v1alpha1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'api-allow-get', namespace: NS },
        spec: { targetRefs: [{ group: '', kind: 'Service', name: 'api' }], action: 'ALLOW', rules: [{ to: [{ operation: { methods: ['GET'] } }] }] },
      },
      {
        apiVersion: 'security.nodemesh.io/v1alpha1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'api-deny-delete', namespace: NS },
        spec: { targetRefs: [{ group: '', kind: 'Service', name: 'api' }], action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] },
      },
      // An L7 rule on workloads that have no waypoint: only a waypoint could check it.
      {
        apiVersion: 'security.nodemesh.io/v1alpha1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'plain-get-only', namespace: NS },
        spec: { selector: { matchLabels: { app: 'plain' } }, action: 'ALLOW', rules: [{ to: [{ operation: { methods: ['GET'] } }] }] },
      },
    ]);
    backends.push(await httpBackend(pod('pod2-1').netnsPath, 8080, 'v1'));
    backends.push(await httpBackend(pod('pod2-2').netnsPath, 8080, 'v2'));
    backends.push(await httpBackend(pod('pod2-3').netnsPath, 8080, 'plain'));
    for (const n of NODES) proxies[n] = startMeshProxy(topo, cp, n);
    waypoint = startWaypoint(topo, cp, 'pod1-2', 'waypoint', NS, 'waypoint');
    await Promise.all(NODES.map((n) => waitMeshReady(topo, n, proxies[n]!)));
    await waitWaypointReady(pod('pod1-2').netnsPath, waypoint);
  }, scaled(150_000));

  afterAll(async () => {
    // NMWP_LOG_DIR=/some/dir keeps every process's log for inspection.
    keepLogs(process.env.NMWP_LOG_DIR, { ...proxies, waypoint, control: cp });
    for (const b of backends) await closeBackend(b);
    await stopProc(waypoint);
    for (const n of NODES) await stopProc(proxies[n]);
    await tearDownMeshLab(LAB, topo, NODES, cp);
  }, scaled(60_000));

  it('enrols the client and the backends, not the waypoint’s pod', async () => {
    const w1 = await adminJson<Array<{ key: string }>>(topo, 'node1', '/workloads');
    expect(w1.map((w) => w.key)).toEqual([`${NS}/pod1-1`]);
    const w2 = await adminJson<Array<{ key: string }>>(topo, 'node2', '/workloads');
    expect(w2.map((w) => w.key).sort()).toEqual([`${NS}/pod2-1`, `${NS}/pod2-2`, `${NS}/pod2-3`]);
  });

  it(
    'sends requests to the Service through the waypoint: split 90/10 between versions, GET 200, DELETE 403',
    async () => {
      const N = 200;
      const gets = await httpFromPod(topo, 'pod1-1', API_VIP, 80, { count: N, concurrency: 8 });
      const failed = gets.filter((r) => r.status !== 200);
      expect(failed, `${JSON.stringify(failed.slice(0, 3))}\nnode1:\n${tail('node1')}\nwaypoint:\n${tail('waypoint')}`).toEqual([]);
      const versions = gets.map((r) => (JSON.parse(r.body!) as { version: string }).version);
      const v2 = versions.filter((v) => v === 'v2').length;
      expect(versions.filter((v) => v === 'v1').length + v2).toBe(N);
      // 10 % of 200 is 20 (binomial sd ≈ 4.2): accept 8..34 (about 3 sd either way).
      expect(v2, `v2 got ${v2} of ${N}`).toBeGreaterThanOrEqual(8);
      expect(v2).toBeLessThanOrEqual(34);

      const deletes = await httpFromPod(topo, 'pod1-1', API_VIP, 80, { method: 'DELETE', count: 5 });
      expect(deletes.map((r) => r.status)).toEqual([403, 403, 403, 403, 403]);
      // The waypoint refused them: no DELETE reached a backend.
      expect(backends.flatMap((b) => b.requests).filter((r) => r.method === 'DELETE')).toEqual([]);

      // The waypoint saw every request from the client's identity (istio_requests_total on its 15020).
      const wpMetrics = await httpGetInNetns(pod('pod1-2').netnsPath, 15020, '/metrics');
      expect(
        metricSum(wpMetrics.body, 'istio_requests_total', { reporter: 'waypoint', source_principal: CLIENT_ID, response_code: '200' }),
      ).toBeGreaterThanOrEqual(N);
      expect(metricSum(wpMetrics.body, 'istio_requests_total', { reporter: 'waypoint', response_code: '403' })).toBeGreaterThanOrEqual(5);
      // The client's node proxy tunnelled to the waypoint; the backends' node proxy admitted the waypoint's identity.
      const m1 = await metricsText(topo, 'node1');
      expect(
        metricSum(m1, 'istio_tcp_connections_opened_total', { reporter: 'source', source_principal: CLIENT_ID, destination_principal: WAYPOINT_ID }),
      ).toBeGreaterThanOrEqual(N);
      const m2 = await metricsText(topo, 'node2');
      expect(
        metricSum(m2, 'istio_tcp_connections_opened_total', { reporter: 'destination', source_principal: WAYPOINT_ID, destination_workload: 'pod2-1' }),
      ).toBeGreaterThan(0);
      expect(metricSum(m2, 'istio_tcp_connections_opened_total', { reporter: 'destination', source_principal: CLIENT_ID })).toBe(0);
    },
    scaled(120_000),
  );

  it(
    'refuses the backends around the waypoint: another identity (across nodes and on the same node) and plaintext are refused and counted',
    async () => {
      const before = await metricsText(topo, 'node2');
      const counted = (t: string) => metricSum(t, 'nodemesh_policy_denials_total', { reporter: 'destination', policy: `Gateway/${NS}/waypoint` });
      const served = backends[0]!.requests.length + backends[1]!.requests.length;
      // Enrolled client straight at the pods (HBONE with its own identity): 403 at node2, reset here.
      for (const ip of [pod('pod2-1').ip, pod('pod2-2').ip]) {
        const r: HttpResult[] = await httpFromPod(topo, 'pod1-1', ip, 8080, { count: 2 });
        expect(
          r.every((x) => x.status === undefined && x.error),
          JSON.stringify(r),
        ).toBe(true);
      }
      // A pod outside the mesh, plaintext (steered to 15006): reset.
      expect((await tcpFromPod(topo, 'pod1-3', pod('pod2-1').ip, 8080)).ok).toBe(false);
      // An enrolled pod on the backends' own node (the same-node path, no tunnel): reset.
      const sameNode = await httpFromPod(topo, 'pod2-3', pod('pod2-1').ip, 8080);
      expect(
        sameNode.every((x) => x.status === undefined && x.error),
        JSON.stringify(sameNode),
      ).toBe(true);
      expect(backends[0]!.requests.length + backends[1]!.requests.length).toBe(served);
      const after = await metricsText(topo, 'node2');
      expect(counted(after) - counted(before)).toBe(6);
      // The node proxy writes its log in the background: the refusals may be seen before their lines are in the file.
      const plainLine = `this connection came from spiffe://${TD}/ns/${NS}/sa/plain`;
      await waitFor('node2’s log of the refusals', async () => (proxies.node2!.log().includes(plainLine) ? true : undefined), 5_000);
      const log = proxies.node2!.log();
      expect(log).toContain(
        `${NS}/pod2-1 is bound to waypoint ${NS}/waypoint (Service api.${NS}.svc.cluster.local): only the waypoint (${WAYPOINT_ID}) may connect to it`,
      );
      expect(log).toMatch(/this connection came in plaintext from 10\.200\.1\.\d+ \(no peer identity\)/);
      // Through the Service it still works.
      const ok = await httpFromPod(topo, 'pod1-1', API_VIP, 80, { count: 2 });
      expect(ok.map((r) => r.status)).toEqual([200, 200]);
    },
    scaled(60_000),
  );

  it(
    'denies everything to a workload whose policy has L7 rules but which has no waypoint, and logs why',
    async () => {
      const r = await httpFromPod(topo, 'pod1-1', PLAIN_VIP, 80, { count: 3 });
      expect(
        r.every((x) => x.status === undefined && x.error),
        JSON.stringify(r),
      ).toBe(true);
      expect(backends[2]!.requests).toEqual([]);
      await waitFor('the reason in node2’s log', async () =>
        proxies
          .node2!.log()
          .includes(
            `only rules with L7 attributes would allow this connection (${NS}/plain-get-only rule 1 needs L7 attributes [methods]), and ${NS}/pod2-3 has no waypoint to check them`,
          )
          ? true
          : undefined,
      );
      const m2 = await metricsText(topo, 'node2');
      expect(metricSum(m2, 'nodemesh_policy_denials_total', { reporter: 'destination', policy: `${NS}/plain-get-only` })).toBe(3);

      // Attaching a waypoint does not turn the selector policy's L7 rule into "allow all methods":
      // waypoints enforce only targetRefs policies, so the node proxy still refuses (the waypoint,
      // now the only peer admitted, is refused too) and says what to do.
      await cp!.api.apply([service('plain', PLAIN_VIP, { app: 'plain' }, { 'nodemesh.io/use-waypoint': 'waypoint' })]);
      await waitFor('node1 to send plain through the waypoint', async () => {
        const s = await adminJson<Array<{ hostname: string; waypoint?: unknown }>>(topo, 'node1', '/services');
        return s.find((x) => x.hostname === `plain.${NS}.svc.cluster.local`)?.waypoint ? true : undefined;
      });
      for (const method of ['GET', 'DELETE']) {
        const [x] = await httpFromPod(topo, 'pod1-1', PLAIN_VIP, 80, { method });
        expect(x!.status, `${method}: ${JSON.stringify(x)}`).not.toBe(200);
      }
      expect(backends[2]!.requests).toEqual([]);
      await waitFor('the targetRefs advice in node2’s log', async () =>
        proxies
          .node2!.log()
          .includes(`${NS}/pod2-3 has a waypoint, but a waypoint enforces only AuthorizationPolicies whose targetRefs name its Service or Gateway`)
          ? true
          : undefined,
      );
    },
    scaled(60_000),
  );

  it(
    'attaching a waypoint closes the direct connections that were open, and new ones go through the waypoint',
    async () => {
      await cp!.api.delete(kindInfo('AuthorizationPolicy')!, 'plain-get-only', NS);
      await cp!.api.apply([service('plain', PLAIN_VIP, { app: 'plain' })]);
      await waitFor('node1 to send plain direct again', async () => {
        const s = await adminJson<Array<{ hostname: string; waypoint?: unknown }>>(topo, 'node1', '/services');
        const plain = s.find((x) => x.hostname === `plain.${NS}.svc.cluster.local`);
        return plain && !plain.waypoint ? true : undefined;
      });
      const held = await holdClient(topo, 'pod1-1', PLAIN_VIP, 80, scaled(30_000)); // outlasts the scaled waits below
      // The client prints its result line (a JSON array) when the connection ends (its hold timer
      // keeps the process itself alive).
      let out = '';
      const ended = new Promise<number>((resolve) =>
        held.child.stdout?.on('data', (d: Buffer) => {
          out += d.toString();
          if (/^\[/m.test(out)) resolve(Date.now());
        }),
      );
      try {
        await waitFor('the direct connection open at pod2-3 (from the client’s identity)', async () => {
          const c = await adminJson<Array<{ details?: { peerIdentity?: string } }>>(topo, 'node2', `/connections?workload=${NS}/pod2-3`);
          return c.some((x) => x.details?.peerIdentity === CLIENT_ID) ? true : undefined;
        });
        const applied = Date.now();
        await cp!.api.apply([service('plain', PLAIN_VIP, { app: 'plain' }, { 'nodemesh.io/use-waypoint': 'waypoint' })]);
        const limit = scaled(10_000); // 10 s on the reference machine: the push, the re-check, the close
        const closedAt = await Promise.race([ended, new Promise<number>((r) => setTimeout(() => r(-1), limit))]);
        expect(closedAt, `the open direct connection was not closed within ${limit} ms`).toBeGreaterThan(0);
        expect(closedAt - applied).toBeLessThan(limit);
        const [result] = JSON.parse(out.trim().split('\n').pop() ?? '[]') as Array<{ ok: boolean; error?: string }>;
        expect(result, out).toMatchObject({ ok: false });
        // node2's guard logged the close before cutting it, but the node proxy writes its log in the
        // background: the client may see the reset before the line is in the file
        const closing = new RegExp(`"policy":"Gateway/${NS}/waypoint".*closing an open connection that policy no longer allows`);
        await waitFor('node2’s log of the close', async () => (closing.test(proxies.node2!.log()) ? true : undefined), 5_000);
      } finally {
        held.child.kill('SIGKILL');
      }
      const viaWaypoint = await httpFromPod(topo, 'pod1-1', PLAIN_VIP, 80, { count: 3 });
      expect(
        viaWaypoint.map((r) => r.status),
        JSON.stringify(viaWaypoint),
      ).toEqual([200, 200, 200]);
      const m2 = await metricsText(topo, 'node2');
      expect(
        metricSum(m2, 'istio_tcp_connections_opened_total', { reporter: 'destination', source_principal: WAYPOINT_ID, destination_workload: 'pod2-3' }),
      ).toBeGreaterThanOrEqual(1);
    },
    scaled(60_000),
  );

  it(
    'checks the waypoint’s identity: a waypoint address presenting another identity than its Workload’s is refused',
    async () => {
      const waypointWorkload = (sa: string) =>
        workload('pod1-2', sa, { 'gateway.networking.k8s.io/gateway-name': 'waypoint', 'nodemesh.io/dataplane-mode': 'none' });
      const saOf = async () =>
        (await adminJson<Array<{ name: string; serviceAccount: string }>>(topo, 'node1', '/mesh/workloads')).find((w) => w.name === 'pod1-2')?.serviceAccount;
      // The Workload at the waypoint's address now says 'impostor'; the process there still presents 'waypoint'.
      await cp!.api.apply([waypointWorkload('impostor')]);
      try {
        await waitFor('node1 to see the waypoint as impostor', async () => ((await saOf()) === 'impostor' ? true : undefined));
        const r = await httpFromPod(topo, 'pod1-1', API_VIP, 80, { count: 2 });
        expect(
          r.every((x) => x.status === undefined && x.error),
          JSON.stringify(r),
        ).toBe(true);
        // Written in the background: the client may see the refusal before the line is in the file.
        const impostorLine = `the peer is ${WAYPOINT_ID}, but spiffe://${TD}/ns/${NS}/sa/impostor was expected`;
        await waitFor('node1’s log of the refused identity', async () => (proxies.node1!.log().includes(impostorLine) ? true : undefined), 5_000);
      } finally {
        await cp!.api.apply([waypointWorkload('waypoint')]);
      }
      await waitFor('node1 to see the waypoint again', async () => ((await saOf()) === 'waypoint' ? true : undefined));
      const ok = await httpFromPod(topo, 'pod1-1', API_VIP, 80, { count: 2 });
      expect(ok.map((x) => x.status)).toEqual([200, 200]);
    },
    scaled(60_000),
  );
});
