// `nodemesh explain` against what the lab's real traffic meets ('nmexpl', one `nodemesh lab up`):
// for every edge of the demo and for a bypass straight at a pod behind the waypoint, plaintext from
// outside the mesh into STRICT, L7 denies at the waypoint (method, path), and DENY by principal,
// namespace and port, the verdict explain prints (through the CLI, from the lab's control plane)
// must be what the client in the source pod met — allowed or refused — and, where a node proxy
// refused it, the reason its access log gives must be explain's; where the waypoint did, it
// answered 403 as explain says.
import { beforeAll, expect, it } from 'vitest';
import type { ClientReport } from '../../lab/app/client';
import { assignRoles, service, type DemoRole } from '../../lab/mesh/demo';
import { accessEntriesSince, proxyLogMarks, runClientIn } from '../../lab/mesh/traffic';
import { readWaypointPods, type LabTopology } from '../../lab/state';
import { netnsGet } from '../../native/netns-http';
import type { Explanation } from '../../explain/model';
import { cli } from '../lab/support';
import { apiFor, enrolledOn, HTTP_SCRIPT, labPerFile, lastJson, nodeIn, until, type LabPerFile } from '../mesh/harness';
import { privilegedDescribe } from '../support/privileged';

const LAB = 'nmexpl';
const CONNECTIONS = 3;

interface Case {
  readonly label: string;
  readonly from: DemoRole;
  /** What explain is asked: TO[:PORT] as a user writes it. */
  readonly to: string;
  /** What the client dials from the source pod. */
  readonly target: string;
  readonly mode: 'http' | 'tcp';
  readonly method?: string;
  readonly path?: string;
}

/** What the traffic met: allowed (every request/connection succeeded), denied (none did), with how. */
interface Met {
  readonly allowed: boolean;
  readonly how: string;
  /** HTTP 403 from the waypoint. */
  readonly status403: boolean;
  /** Deny reasons the destination node proxies logged for connections from the source pod meanwhile. */
  readonly denyReasons: string[];
}

privilegedDescribe('lab', 'nodemesh explain agrees with the traffic (lab nmexpl)', () => {
  const lab = labPerFile(LAB, { keepLogsAs: 'nm-explain-logs' });
  let topo: LabTopology;
  let up: LabPerFile['up'];
  let fe: DemoRole, be: DemoRole, te: DemoRole, cl: DemoRole;
  beforeAll(() => {
    ({ topo, up } = lab);
    [fe, be, te, cl] = ['frontend', 'backend', 'tcp-echo', 'client'].map((r) => assignRoles(topo).find((x) => x.role === r) as DemoRole);
  });

  const vip = (name: 'frontend' | 'backend' | 'tcp-echo'): string => `${service(name).vip}:${service(name).port}`;
  const wl = (r: DemoRole): string => `${r.namespace}/${r.workload}`;

  async function explain(c: Case): Promise<Explanation> {
    const args = ['explain', wl(c.from), c.to, '-o', 'json', '--lab', LAB, ...(c.method ? ['--method', c.method] : []), ...(c.path ? ['--path', c.path] : [])];
    const r = await cli(args);
    expect(r.code, `nodemesh ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return JSON.parse(r.stdout) as Explanation;
  }

  async function drive(c: Case): Promise<Met> {
    const marks = proxyLogMarks(topo);
    let allowed: boolean;
    let how: string;
    let status403 = false;
    if (c.mode === 'http' && c.path) {
      const [host, port] = c.target.split(':') as [string, string];
      const r = lastJson<{ codes: Record<string, number> }>(
        await nodeIn(topo, c.from.pod.name, HTTP_SCRIPT, [host, port, c.method ?? 'GET', c.path, String(CONNECTIONS)]),
      );
      allowed = r.codes['200'] === CONNECTIONS;
      status403 = r.codes['403'] === CONNECTIONS;
      how = JSON.stringify(r.codes);
      if (!allowed && Object.keys(r.codes).some((k) => k === '200')) throw new Error(`${c.label}: mixed outcome ${how}`);
    } else {
      const r = await runClientIn(topo, c.from.pod.name, c.target, c.mode, {
        connections: CONNECTIONS,
        concurrency: 1,
        size: c.mode === 'tcp' ? 512 : 0,
        timeoutMs: 10_000,
        ...(c.method ? { method: c.method } : {}),
      });
      if (!('ok' in r)) throw new Error(`${c.label}: the client did not run: ${r.error}`);
      const rep = r as ClientReport;
      allowed = rep.ok === CONNECTIONS;
      if (!allowed && rep.ok > 0) throw new Error(`${c.label}: mixed outcome ${JSON.stringify(rep).slice(0, 400)}`);
      status403 = rep.statusCodes['403'] === CONNECTIONS;
      how = `${rep.ok}/${CONNECTIONS} ok ${JSON.stringify(rep.statusCodes)} ${rep.errorSamples.join('; ')}`.trim();
    }
    // denial lines are written at once; give the proxies a moment to flush them
    await new Promise((r) => setTimeout(r, allowed ? 0 : 500));
    const denyReasons = accessEntriesSince(topo, marks)
      .filter((e) => e.reporter === 'destination' && e.msg === 'connection denied' && e.srcAddr.startsWith(`${c.from.pod.ip}:`))
      .map((e) => e.denyReason ?? '');
    return { allowed, how, status403, denyReasons };
  }

  /** explain's verdict against the traffic's, for each case; the mismatches (empty when they agree). */
  async function compare(cases: readonly Case[]): Promise<string[]> {
    const problems: string[] = [];
    for (const c of cases) {
      const e = await explain(c);
      const met = await drive(c);
      const said = e.verdict.allowed ? 'allowed' : 'denied';
      const got = met.allowed ? 'allowed' : 'denied';
      if (said !== got) problems.push(`${c.label}: explain says ${said} (${e.verdict.line}) but the traffic was ${got} (${met.how})`);
      if (!e.verdict.allowed && e.verdict.by?.startsWith('node proxy')) {
        const denial = e.policies.find((p) => !p.allowed);
        if (!denial || !met.denyReasons.includes(denial.reason))
          problems.push(`${c.label}: explain's reason "${denial?.reason}" is not what the node proxy logged: ${JSON.stringify(met.denyReasons)}`);
      }
      if (!e.verdict.allowed && e.verdict.by?.startsWith('waypoint') && (e.waypoint?.status !== 403 || !met.status403))
        problems.push(`${c.label}: explain says the waypoint answers ${e.waypoint?.status}, the traffic met ${met.how}`);
    }
    return problems;
  }

  it('lab up ran the demo', () => {
    expect(up.code, up.stdout + up.stderr).toBe(0);
  });

  it('every edge of the demo, a bypass at a pod behind the waypoint, STRICT from outside, and an L7 method deny', async () => {
    const cases: Case[] = [
      { label: 'frontend -> backend (GET through the waypoint)', from: fe, to: 'backend.demo', target: vip('backend'), mode: 'http' },
      { label: 'frontend -> tcp-echo', from: fe, to: 'tcp-echo.demo.svc.cluster.local:9000', target: vip('tcp-echo'), mode: 'tcp' },
      { label: 'tcp-echo -> backend (not the allowed principal)', from: te, to: vip('backend'), target: vip('backend'), mode: 'http' },
      { label: 'client(outside) -> frontend (STRICT)', from: cl, to: `${fe.pod.ip}:${fe.port}`, target: `${fe.pod.ip}:${fe.port}`, mode: 'http' },
      { label: 'client(outside) -> tcp-echo (STRICT)', from: cl, to: `${wl(te)}:${te.port}`, target: `${te.pod.ip}:${te.port}`, mode: 'tcp' },
      { label: 'bypass: frontend -> backend pod', from: fe, to: `${be.pod.ip}:${be.port}`, target: `${be.pod.ip}:${be.port}`, mode: 'http' },
      { label: 'L7 method: frontend DELETE backend', from: fe, to: 'backend.demo:80', target: vip('backend'), mode: 'http', method: 'DELETE' },
    ];
    expect(await compare(cases)).toEqual([]);
    // and what explain said about them, in the mesh's words
    const get = await explain(cases[0]!);
    expect(get.path).toBe('waypoint');
    expect(get.waypoint?.route?.httpRoute).toBe('demo/backend-split');
    expect(get.waypoint?.backends.map((b) => b.weight)).toEqual([90, 10]);
    expect(get.hops.map((h) => h.fromIdentity)).toEqual(['spiffe://cluster.local/ns/demo/sa/frontend', 'spiffe://cluster.local/ns/demo/sa/waypoint']);
    expect((await explain(cases[3]!)).verdict.by).toBe('node proxy ' + fe.pod.node + ': demo/default');
    expect((await explain(cases[5]!)).policies.find((p) => !p.allowed)?.kind).toBe('waypoint-binding');
  });

  it('an L7 path deny at the waypoint: GET /admin refused, GET / allowed', async () => {
    await apiFor(LAB).apply([
      {
        apiVersion: 'security.nodemesh.io/v1alpha1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'explain-deny-admin', namespace: 'demo' },
        spec: { targetRefs: [{ group: '', kind: 'Service', name: 'backend' }], action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] },
      },
    ]);
    const wp = readWaypointPods(LAB)[0]!;
    await until('the waypoint to receive explain-deny-admin', async () =>
      (await netnsGet(wp.pod.netnsPath, '127.0.0.1', 15000, '/config_dump')).body.includes('explain-deny-admin'),
    );
    const problems = await compare([
      { label: 'L7 path: frontend GET /admin/users', from: fe, to: 'backend.demo:80', target: vip('backend'), mode: 'http', path: '/admin/users' },
      { label: 'L7 path: frontend GET /', from: fe, to: 'backend.demo:80', target: vip('backend'), mode: 'http', path: '/' },
    ]);
    expect(problems).toEqual([]);
  });

  it('DENY by principal and by namespace (the outside namespace enrolled), with the edges they leave alone', async () => {
    const api = apiFor(LAB);
    await api.apply([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'outside', labels: { 'nodemesh.io/dataplane-mode': 'ambient' } } },
      {
        apiVersion: 'security.nodemesh.io/v1alpha1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'explain-deny-frontend', namespace: 'demo' },
        spec: {
          selector: { matchLabels: { app: 'tcp-echo' } },
          action: 'DENY',
          rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/frontend'] } }] }],
        },
      },
    ]);
    await until('the outside client to be enrolled', async () => (await enrolledOn(topo, cl.pod.node)).includes(wl(cl)), 20_000);
    await untilPolicyOnNodes('demo/explain-deny-frontend');
    const problems = await compare([
      { label: 'principal: frontend -> tcp-echo (DENY principal sa/frontend)', from: fe, to: 'tcp-echo.demo:9000', target: vip('tcp-echo'), mode: 'tcp' },
      { label: 'principal: backend -> tcp-echo (another principal)', from: be, to: 'tcp-echo.demo:9000', target: vip('tcp-echo'), mode: 'tcp' },
      {
        label: 'namespace: client(outside, enrolled) -> tcp-echo (DENY namespace outside)',
        from: cl,
        to: 'tcp-echo.demo:9000',
        target: vip('tcp-echo'),
        mode: 'tcp',
      },
      { label: 'namespace: client(outside, enrolled) -> frontend', from: cl, to: `${wl(fe)}:${fe.port}`, target: `${fe.pod.ip}:${fe.port}`, mode: 'http' },
    ]);
    expect(problems).toEqual([]);
  });

  it('DENY by port', async () => {
    await apiFor(LAB).apply([
      {
        apiVersion: 'security.nodemesh.io/v1alpha1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'explain-deny-8080', namespace: 'demo' },
        spec: { selector: { matchLabels: { app: 'frontend' } }, action: 'DENY', rules: [{ to: [{ operation: { ports: ['8080'] } }] }] },
      },
    ]);
    await untilPolicyOnNodes('demo/explain-deny-8080');
    const problems = await compare([
      { label: 'port: backend -> frontend:8080 (DENY port 8080)', from: be, to: `${fe.pod.ip}:${fe.port}`, target: `${fe.pod.ip}:${fe.port}`, mode: 'http' },
      { label: 'port: backend -> tcp-echo:9000', from: be, to: vip('tcp-echo'), target: vip('tcp-echo'), mode: 'tcp' },
    ]);
    expect(problems).toEqual([]);
  });

  /** Every node proxy holds the Authorization (its admin /policies), so traffic meets it. */
  async function untilPolicyOnNodes(name: string): Promise<void> {
    for (const n of topo.nodes)
      await until(`${n.name}'s node proxy to receive ${name}`, async () => {
        const r = await netnsGet(n.netnsPath, '127.0.0.1', 15000, '/policies');
        return (JSON.parse(r.body) as Array<{ namespace: string; name: string }>).some((p) => `${p.namespace}/${p.name}` === name);
      });
  }
});
