// The mesh end to end in a lab of its own ('nmmesh'), built by the real `nodemesh lab up` (control
// plane, node tokens, a node proxy per node, the demo): bytes through the mesh across nodes and on
// one node, only TLS on the wire between nodes, the ALLOW/DENY matrix, STRICT, a policy change
// closing an open connection, the certificate service refusing another node's identity, and the
// metrics and access logs for an allowed and a denied connection.
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { reportPassed, type ClientReport } from '../../lab/app/client';
import { assignRoles, service, spiffeId, type DemoRole } from '../../lab/mesh/demo';
import { meshPaths } from '../../lab/mesh/paths';
import { accessEntriesSince, appMain, proxyLogMarks, runClientIn } from '../../lab/mesh/traffic';
import { readWaypointPods, tryLoadLabState, type LabTopology } from '../../lab/state';
import { netnsGet } from '../../native/netns-http';
import { spawnInLab } from '../../lab/spawn';
import { resolveKind } from '../../control/resources/kinds';
import { privilegedDescribe } from '../support/privileged';
import { cli, leftovers } from '../lab/support';
import {
  apiFor,
  CA_SCRIPT,
  ECHO_SCRIPT,
  enrolledOn,
  HOLD_SCRIPT,
  labPerFile,
  lastJson,
  metricsOf,
  nodeIn,
  sample,
  spawnCollect,
  startTcpdump,
  until,
  type LabPerFile,
} from './harness';
import { scaled } from '../support/speed';
import { dashboardFiles, familyOf, parseExposition, queriesOf, uses } from '../support/dashboards';

const LAB = 'nmmesh';
const MiB = 1024 * 1024;

privilegedDescribe('lab', 'mesh end to end (lab nmmesh)', () => {
  const lab = labPerFile(LAB, { keepLogsAs: 'nm-mesh-logs' });
  let topo: LabTopology;
  let up: LabPerFile['up'];
  let fe: DemoRole, be: DemoRole, te: DemoRole, cl: DemoRole;
  const tmp = mkdtempSync(join(tmpdir(), 'nm-mesh-'));
  const vip = (name: 'frontend' | 'backend' | 'tcp-echo'): string => `${service(name).vip}:${service(name).port}`;
  const tcp = (pod: DemoRole, target: string, size: number, connections = 1, concurrency = 1): Promise<ClientReport | { error: string }> =>
    runClientIn(topo, pod.pod.name, target, 'tcp', { connections, concurrency, size, timeoutMs: scaled(60_000) });
  const http = (pod: DemoRole, target: string): Promise<ClientReport | { error: string }> =>
    runClientIn(topo, pod.pod.name, target, 'http', { connections: 1, concurrency: 1, size: 0, timeoutMs: scaled(8000) });
  const passed = (r: ClientReport | { error: string }): boolean => 'ok' in r && reportPassed(r);

  beforeAll(() => {
    ({ topo, up } = lab);
    [fe, be, te, cl] = ['frontend', 'backend', 'tcp-echo', 'client'].map((r) => assignRoles(topo).find((x) => x.role === r) as DemoRole);
  });

  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('lab up runs the demo and prints one row per edge, each as the policy says', () => {
    expect(up.code, `lab up failed:\n${up.stderr.slice(-6000)}\nits output:\n${up.stdout.slice(-4000)}`).toBe(0);
    expect(up.stderr).toContain('control plane in nm-nmmesh-control');
    const rows = up.stdout.split('\n').filter((l) => / -> /.test(l));
    expect(rows).toHaveLength(5);
    const row = (label: string): string => rows.find((l) => l.includes(label)) ?? '';
    // the backend is behind its waypoint: the client's peer is the waypoint, which answers for it
    expect(row('frontend -> backend')).toMatch(/^ok .*5\/5 ok\s+waypoint: 200 x5\s+yes\s+ns\/demo\/sa\/frontend\s+ns\/demo\/sa\/waypoint/);
    // same node: over HBONE, or the node proxy's same-node path (no wire, both identities held)
    expect(row('frontend -> tcp-echo')).toMatch(/^ok .*5\/5 ok\s+allowed 5\s+(yes|same node)\s+ns\/demo\/sa\/frontend\s+ns\/demo\/sa\/tcp-echo/);
    expect(row('tcp-echo -> backend')).toMatch(/^ok .*0\/5 ok\s+waypoint: 403 x5\s+yes\s+ns\/demo\/sa\/tcp-echo\s+ns\/demo\/sa\/waypoint.*RBAC: access denied/);
    expect(up.stdout).toContain('nodemesh lab down --lab nmmesh');
    // STRICT rows: the outside client must be refused
    expect(row('client(outside) -> frontend')).toMatch(/^ok .*0\/5 ok/);
    expect(row('client(outside) -> tcp-echo')).toMatch(/^ok .*0\/5 ok/);
    expect(up.code).toBe(0);
  });

  it('bytes arrive intact across nodes and on one node (0 B, 1 MiB, 64 MiB, 200 concurrent) and the server side sees the client identity', async () => {
    for (const [from, label] of [
      [be, 'cross-node'],
      [fe, 'same-node'],
    ] as const) {
      const marks = proxyLogMarks(topo);
      for (const size of [0, MiB, 64 * MiB]) {
        const r = await tcp(from, vip('tcp-echo'), size);
        expect(passed(r), `${label} ${size} B: ${JSON.stringify(r).slice(0, 400)}`).toBe(true);
        if ('ok' in r) expect(r.sha256Echoed).toBe(r.sha256Sent);
      }
      const many = await tcp(from, vip('tcp-echo'), 16 * 1024, 200, 200);
      expect(passed(many), `${label} 200 concurrent: ${JSON.stringify(many).slice(0, 400)}`).toBe(true);
      // the destination node proxy (tcp-echo's node) names the client by its SPIFFE ID, over HBONE
      await new Promise((r) => setTimeout(r, 500));
      const seen = accessEntriesSince(topo, marks).filter((e) => e.reporter === 'destination' && e.dstAddr.startsWith(`${te.pod.ip}:`));
      expect(seen.length, label).toBeGreaterThanOrEqual(203);
      expect(new Set(seen.map((e) => e.srcIdentity))).toEqual(new Set([spiffeId('demo', from.serviceAccount)]));
      const protocols = [...new Set(seen.map((e) => e.protocol))];
      expect(protocols.length).toBe(1);
      expect(label === 'cross-node' ? ['HBONE'] : ['HBONE', 'same-node']).toContain(protocols[0]);
      expect(seen.some((e) => e.bytesSent === 64 * MiB && e.bytesRecv === 64 * MiB)).toBe(true);
    }
  });

  it('between nodes the underlay carries only TLS: a marker sent by an enrolled pod is not on the wire, by a pod outside the mesh it is', async () => {
    const marker = `NMMARK${randomBytes(6).toString('hex')}`;
    const grepCount = (file: string): Promise<number> =>
      new Promise((resolve) => execFile('grep', ['-c', '-a', marker, file], (_e, out) => resolve(Number(out.trim() || '0'))));
    // enrolled: backend (node2) -> tcp-echo (node1) through the VIP
    const meshPcap = join(tmp, 'mesh.pcap');
    let dump = await startTcpdump(topo.underlay.netnsPath, meshPcap);
    const inMesh = lastJson<{ ok: boolean; received: number }>(
      await nodeIn(topo, be.pod.name, ECHO_SCRIPT, [service('tcp-echo').vip, String(service('tcp-echo').port), marker, String(256 * 1024)]),
    );
    await dump.stop();
    expect(inMesh.ok).toBe(true);
    expect(readFileSync(meshPcap).length).toBeGreaterThan(256 * 1024); // the transfer was captured (encrypted)
    expect(await grepCount(meshPcap)).toBe(0);
    // not enrolled: the outside client (node2) -> an echo server on node1's underlay address
    const echo = spawnInLab(topo, 'node1', [process.execPath, appMain(), 'echo', '--port', '9100', '--host', topo.nodes[0]!.underlayIp], {
      stdio: 'ignore',
      record: 'test-echo',
    });
    try {
      const plainPcap = join(tmp, 'plain.pcap');
      dump = await startTcpdump(topo.underlay.netnsPath, plainPcap);
      let plain = { ok: false };
      for (let i = 0; i < 20 && !plain.ok; i++) {
        plain = lastJson(await nodeIn(topo, cl.pod.name, ECHO_SCRIPT, [topo.nodes[0]!.underlayIp, '9100', marker, String(256 * 1024)]));
        if (!plain.ok) await new Promise((r) => setTimeout(r, 100)); // the echo server may still be starting
      }
      await dump.stop();
      expect(plain.ok).toBe(true);
      expect(await grepCount(plainPcap)).toBeGreaterThan(0);
    } finally {
      echo.kill('SIGKILL');
    }
  });

  it('STRICT refuses plaintext from the outside client, and the destination proxy logs the denial', async () => {
    const marks = proxyLogMarks(topo);
    expect(passed(await http(cl, `${fe.pod.ip}:${fe.port}`))).toBe(false);
    expect(passed(await tcp(cl, `${te.pod.ip}:${te.port}`, 1000))).toBe(false);
    // the destination writes its access line asynchronously: wait for both (a fixed 300 ms was too short in a VM)
    const deniedNow = () => accessEntriesSince(topo, marks).filter((e) => e.reporter === 'destination' && e.srcAddr.startsWith(`${cl.pod.ip}:`));
    await until('both denials in the destination access log', async () => deniedNow().length >= 2, 5000).catch(() => undefined);
    const denied = deniedNow();
    expect(denied.length).toBeGreaterThanOrEqual(2);
    expect(denied.every((e) => e.msg === 'connection denied' && e.denyReason)).toBe(true);
  });

  it('ALLOW/DENY matrix over principals, namespaces and ports', async () => {
    const api = apiFor(LAB);
    const nsOutside = (mode?: string): Record<string, unknown> => ({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'outside', ...(mode ? { labels: { 'nodemesh.io/dataplane-mode': mode } } : {}) },
    });
    // frontend: only namespace demo, only port 8080 (an extra server on 8081 shows the port rule);
    // namespace outside enrolled, so its client has an identity (spiffe://…/ns/outside/sa/client)
    await api.apply([
      nsOutside('ambient'),
      {
        apiVersion: 'security.nodemesh.io/v1alpha1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'frontend-ports', namespace: 'demo' },
        spec: {
          selector: { matchLabels: { app: 'frontend' } },
          action: 'ALLOW',
          rules: [{ from: [{ source: { namespaces: ['demo'] } }], to: [{ operation: { ports: ['8080'] } }] }],
        },
      },
    ]);
    const extra = spawnInLab(topo, fe.pod.name, [process.execPath, appMain(), 'echo', '--port', '8081'], { stdio: 'ignore', record: 'test-echo-8081' });
    try {
      const feExtra = `${fe.pod.ip}:8081`;
      await until('the outside client to be enrolled', async () => (await enrolledOn(topo, cl.pod.node)).includes(`outside/${cl.workload}`));
      await until('frontend-ports to reach the proxies', async () => !passed(await tcp(be, feExtra, 10)));
      const cells: Array<[string, DemoRole, string, 'http' | 'tcp', boolean]> = [
        ['principal demo/frontend -> backend (the allowed principal)', fe, vip('backend'), 'http', true],
        ['principal demo/tcp-echo -> backend (another principal)', te, vip('backend'), 'http', false],
        ['principal outside/client -> backend', cl, vip('backend'), 'http', false],
        ['namespace demo, other node -> tcp-echo (DENY only namespace outside)', be, vip('tcp-echo'), 'tcp', true],
        ['namespace demo, same node -> tcp-echo', fe, vip('tcp-echo'), 'tcp', true],
        ['namespace outside -> tcp-echo (DENY namespace outside)', cl, vip('tcp-echo'), 'tcp', false],
        ['namespace demo -> frontend port 8080 (allowed namespace and port)', be, `${fe.pod.ip}:8080`, 'http', true],
        ['namespace demo -> frontend port 8080 via the VIP', te, vip('frontend'), 'http', true],
        ['namespace outside -> frontend port 8080 (namespace not allowed)', cl, vip('frontend'), 'http', false],
        ['namespace demo -> frontend port 8081 (port not allowed)', be, feExtra, 'tcp', false],
        ['namespace demo, same node -> frontend port 8081', te, feExtra, 'tcp', false],
      ];
      const got: string[] = [];
      const want: string[] = [];
      for (const [name, from, target, mode, allow] of cells) {
        const r = mode === 'http' ? await http(from, target) : await tcp(from, target, 100);
        got.push(`${name}: ${passed(r) ? 'ALLOW' : 'DENY'}`);
        want.push(`${name}: ${allow ? 'ALLOW' : 'DENY'}`);
      }
      expect(got).toEqual(want);
    } finally {
      extra.kill('SIGKILL');
      await api.apply([nsOutside()]).catch(() => undefined);
      await api.delete(resolveKind('AuthorizationPolicy')!, 'frontend-ports', 'demo').catch(() => undefined);
      await until('the outside client to be unenrolled', async () => !(await enrolledOn(topo, cl.pod.node)).includes(`outside/${cl.workload}`)).catch(
        () => undefined,
      );
    }
  });

  it('a policy change closes an open connection that is now denied', async () => {
    const api = apiFor(LAB);
    const hold = spawnCollect(topo, be.pod.name, [process.execPath, '-e', HOLD_SCRIPT, '--', service('tcp-echo').vip, String(service('tcp-echo').port)]);
    try {
      await hold.waitFor(/^open$/m, 10_000);
      const t0 = Date.now();
      await api.apply([
        {
          apiVersion: 'security.nodemesh.io/v1alpha1',
          kind: 'AuthorizationPolicy',
          metadata: { name: 'tcp-echo-deny-backend', namespace: 'demo' },
          spec: {
            selector: { matchLabels: { app: 'tcp-echo' } },
            action: 'DENY',
            rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/backend'] } }] }],
          },
        },
      ]);
      await hold.waitFor(/"closed"/, 10_000);
      const closed = JSON.parse(hold.out().trim().split('\n').pop() ?? '{}') as { closed: string; echoed: number };
      expect(closed.echoed).toBeGreaterThan(0);
      expect(Date.now() - t0).toBeLessThan(scaled(10_000));
      // and a new connection is refused too
      expect(passed(await tcp(be, vip('tcp-echo'), 100))).toBe(false);
    } finally {
      hold.child.kill('SIGKILL');
      await api.delete(resolveKind('AuthorizationPolicy')!, 'tcp-echo-deny-backend', 'demo').catch(() => undefined);
    }
  });

  it("a node proxy's token cannot obtain a certificate for a workload on another node (PERMISSION_DENIED)", async () => {
    const p = meshPaths(LAB);
    const r = lastJson<Array<{ id: string; ok: boolean; code?: number; message?: string }>>(
      await nodeIn(topo, 'node1', CA_SCRIPT, [`${topo.control.ip}:15012`, p.trustBundle, p.nodeToken('node1'), 'outside/client', 'demo/frontend']),
    );
    const byId = new Map(r.map((x) => [x.id, x]));
    // the client runs only on node2 (backends run on both nodes in the 2x3 demo)
    expect(byId.get('outside/client')).toMatchObject({ ok: false, code: 7 }); // grpc.status.PERMISSION_DENIED
    expect(byId.get('demo/frontend')).toMatchObject({ ok: true }); // its own node's workload: issued
  });

  it('metrics and access logs carry the right labels for an allowed and a denied connection', async () => {
    const marks = proxyLogMarks(topo);
    // The backend sits behind its waypoint: through the VIP the waypoint connects (allowed); straight at
    // the pod, tcp-echo's own identity is refused by the backend's node proxy (bound to the waypoint).
    expect(passed(await http(fe, vip('backend')))).toBe(true);
    expect(passed(await http(te, `${be.pod.ip}:${be.port}`))).toBe(false);
    // an L4 edge end to end: backend -> tcp-echo (the access line is written when it closes)
    expect(passed(await tcp(be, vip('tcp-echo'), 1000))).toBe(true);
    await new Promise((r) => setTimeout(r, 500));
    const m = await metricsOf(topo, be.pod.node);
    const common = {
      reporter: 'destination',
      destination_workload: be.workload,
      destination_workload_namespace: 'demo',
      destination_principal: spiffeId('demo', 'backend'),
      connection_security_policy: 'mutual_tls',
    };
    expect(
      sample(m, 'istio_tcp_connections_opened_total', { ...common, source_principal: spiffeId('demo', 'waypoint'), source_workload: 'wp-waypoint' }),
    ).toBeGreaterThan(0);
    expect(
      sample(m, 'istio_tcp_connections_closed_total', {
        ...common,
        source_principal: spiffeId('demo', 'tcp-echo'),
        source_workload: te.workload,
        response_flags: 'DENY',
      }),
    ).toBeGreaterThan(0);
    // Kiali's labels: canonical service/revision from the demo's app/version labels, on both ends.
    expect(
      sample(m, 'istio_tcp_connections_closed_total', {
        ...common,
        source_workload: te.workload,
        source_canonical_service: 'tcp-echo',
        source_canonical_revision: 'latest',
        destination_canonical_service: 'backend',
        destination_canonical_revision: be.version ?? 'v1',
        destination_app: 'backend',
        destination_cluster: 'Kubernetes',
      }),
    ).toBeGreaterThan(0);
    // The waypoint names the backend workload that served the request, from EDS endpoint metadata.
    const [wp] = readWaypointPods(LAB);
    expect(wp, 'the demo runs a waypoint pod').toBeDefined();
    const wm = await netnsGet(wp!.pod.netnsPath, '127.0.0.1', 15020, '/metrics');
    const backends = assignRoles(topo).filter((r) => r.role === 'backend');
    const served = backends.filter(
      (b) =>
        (sample(wm.body, 'istio_requests_total', {
          reporter: 'waypoint',
          source_principal: spiffeId('demo', 'frontend'),
          source_canonical_service: 'frontend',
          destination_workload: b.workload,
          destination_workload_namespace: 'demo',
          destination_app: 'backend',
          destination_version: b.version ?? 'v1',
          destination_canonical_service: 'backend',
          destination_canonical_revision: b.version ?? 'v1',
          destination_cluster: 'Kubernetes',
          response_code: '200',
        }) ?? 0) > 0,
    );
    expect(
      served.length,
      wm.body
        .split('\n')
        .filter((l) => l.startsWith('istio_requests_total{'))
        .join('\n'),
    ).toBeGreaterThan(0);
    const mt = await metricsOf(topo, te.pod.node);
    expect(
      sample(mt, 'istio_tcp_sent_bytes_total', {
        reporter: 'destination',
        destination_workload: te.workload,
        source_principal: spiffeId('demo', 'backend'),
        connection_security_policy: 'mutual_tls',
      }),
    ).toBeGreaterThan(0);
    const entries = accessEntriesSince(topo, marks).filter((e) => e.reporter === 'destination');
    const allowed = entries.find((e) => e.dstAddr.startsWith(`${te.pod.ip}:`) && e.srcIdentity === spiffeId('demo', 'backend'));
    const denied = entries.find((e) => e.dstAddr.startsWith(`${be.pod.ip}:`) && e.srcIdentity === spiffeId('demo', 'tcp-echo'));
    expect(allowed).toMatchObject({
      msg: 'connection complete',
      protocol: 'HBONE',
      dstIdentity: spiffeId('demo', 'tcp-echo'),
      srcWorkload: `demo/${be.workload}`,
    });
    expect(allowed?.bytesSent).toBeGreaterThan(0);
    expect(denied).toMatchObject({ msg: 'connection denied', protocol: 'HBONE', srcWorkload: `demo/${te.workload}` });
    expect(denied?.denyReason).toMatch(/is bound to waypoint demo\/waypoint/);
  });
  it('every metric and label the Grafana dashboards query is served by the running lab (node proxies, waypoint, control plane)', async () => {
    // after the traffic of the tests above: the scrapes hold series for the request and connection metrics
    const scrapes = await Promise.all(topo.nodes.map((n) => metricsOf(topo, n.name)));
    const [wp] = readWaypointPods(LAB);
    expect(wp, 'the demo runs a waypoint pod').toBeDefined();
    scrapes.push((await netnsGet(wp!.pod.netnsPath, '127.0.0.1', 15020, '/metrics')).body);
    scrapes.push(
      await new Promise<string>((resolve, reject) => {
        apiFor(LAB)
          .passThrough('GET', '/metrics', {}, (res) => {
            let body = '';
            res.setEncoding('utf8').on('data', (c: string) => (body += c));
            res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`control plane /metrics: HTTP ${res.statusCode}`))));
          })
          .on('error', reject)
          .end();
      }),
    );
    const live = parseExposition(scrapes);
    const problems: string[] = [];
    let withSeries = 0;
    for (const file of dashboardFiles()) {
      for (const q of queriesOf(file)) {
        const u = uses(q.expr);
        for (const m of u.metrics) if (!familyOf(m, live.families)) problems.push(`${q.where}: ${m} is served by no process of the lab`);
        for (const [m, labels] of u.selectors) {
          const seen = live.labels.get(m);
          if (!seen) continue; // declared but no series yet (a counter never incremented): its label names are the unit test's
          withSeries++;
          for (const l of labels) if (!seen.has(l)) problems.push(`${q.where}: the lab's ${m} series have no label ${l}`);
        }
      }
    }
    expect(problems).toEqual([]);
    // the request and connection panels are checked on real series, not only on declarations
    for (const m of ['istio_requests_total', 'istio_tcp_connections_opened_total', 'istio_tcp_sent_bytes_total']) expect(live.labels.has(m), m).toBe(true);
    expect(withSeries).toBeGreaterThan(10);
  });

  it('the config CLI reaches the lab control plane from the root netns (--lab), and lab status shows every mesh process ready', async () => {
    const got = await cli(['get', 'workloads', '-A', '--lab', LAB]);
    expect(got.code, got.stderr).toBe(0);
    for (const w of [fe, be, te, cl]) expect(got.stdout).toContain(w.workload);
    const applied = await cli(['namespace', 'enroll', 'nm-extra', '--lab', LAB]);
    expect(applied.code, applied.stderr).toBe(0);
    const ns = await cli(['get', 'ns', 'nm-extra', '-o', 'json', '--lab', LAB]);
    expect(JSON.parse(ns.stdout)).toMatchObject({ metadata: { labels: { 'nodemesh.io/dataplane-mode': 'ambient' } } });
    const status = await cli(['lab', 'status', '--lab', LAB, '--json']);
    const procs = (JSON.parse(status.stdout) as { processes: Array<{ name: string; place: string; alive: boolean; health: string }> }).processes;
    const ready = (name: string, place: string): boolean => procs.some((p) => p.name === name && p.place === place && p.alive && p.health.startsWith('ready'));
    expect(ready('control-plane', 'control')).toBe(true);
    expect(ready('node-proxy', 'node1') && ready('node-proxy', 'node2')).toBe(true);
    expect(ready('app-frontend', fe.pod.name) && ready('app-backend', be.pod.name) && ready('app-tcp-echo', te.pod.name)).toBe(true);
  });

  it('lab down stops the mesh (node proxies unenrol first) and leaves nothing', async () => {
    const pids = (tryLoadLabState(LAB)?.processes ?? []).map((p) => p.pid);
    expect(pids.length).toBeGreaterThanOrEqual(6);
    const down = await cli(['lab', 'down', '--lab', LAB], scaled(60_000));
    expect(down.code, down.stderr).toBe(0);
    expect(down.stderr).toContain('--teardown');
    expect(await leftovers(LAB, pids)).toEqual([]);
    expect(existsSync(`/run/nodemesh/node-proxy/${LAB}-node1`) || existsSync(`/run/nodemesh/node-proxy/${LAB}-node2`)).toBe(false); // enrolment records
  });
});
