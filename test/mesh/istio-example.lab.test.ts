// Istio's own ambient example, applied unchanged to a lab with live traffic ('nmistio', one
// `nodemesh lab up --no-demo`), must give the verdicts its nodemesh spelling gives. The lab plays
// Bookinfo's cast in namespace `default` (productpage and reviews as HTTP servers on 9080, `curl`
// as the client the docs allow, `reviews-v1` as the one they refuse) and a `sleep` pod in namespace
// `legacy`, outside the mesh (as in Istio's mTLS migration task). The Istio configuration is
// applied with `nodemesh apply -f` exactly as Istio's docs print it, in the docs' order:
//   1. the namespace enrolled (istio.io/dataplane-mode: ambient) and the L4 policy for the node
//      proxies (selector app: productpage, ALLOW only the Bookinfo gateway's identity);
//   2. the waypoint (`istioctl waypoint generate` output: Gateway class istio-waypoint), the
//      namespace label istio.io/use-waypoint, the L7 policy on the productpage Service (ALLOW GET
//      from sa curl) with the L4 policy updated to admit the waypoint, and PeerAuthentication STRICT.
// After each step real requests run from inside the pods, and each edge's verdict (allowed, 403
// from the waypoint, or refused by a node proxy) is recorded. Then everything is taken back (the
// namespace stays enrolled, its label now nodemesh's) and the same steps run again in nodemesh's
// own spelling (`nodemesh namespace enroll`, `nodemesh waypoint apply --enroll-namespace`,
// security.nodemesh.io/v1alpha1 policies): the verdicts must be the same, and the ones the docs
// promise. Lab names: the docs' namespace `foo` (PeerAuthentication) is this lab's `default`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { resolveKind, type KindInfo } from '../../control/resources/kinds';
import { readWaypointPods, type LabPod, type LabTopology } from '../../lab/state';
import { cli, startApp } from '../lab/support';
import { ISTIO_ENROLL, ISTIO_L4, ISTIO_L7, ISTIO_STRICT, ISTIO_WAYPOINT, nodemeshPolicySpelling } from '../support/istio-docs';
import { privilegedDescribe } from '../support/privileged';
import { apiFor, enrolledOn, HTTP_SCRIPT, labPerFile, lastJson, nodeIn, until } from './harness';

const LAB = 'nmistio';
/** Requests per edge: every one must meet the same verdict. */
const REQUESTS = 2;

// Istio's documents, unchanged, and their nodemesh spelling: test/support/istio-docs.ts.
const native = nodemeshPolicySpelling;

const PORT = 9080;
const VIPS = { productpage: '10.96.0.30', reviews: '10.96.0.31' } as const;

interface Cast {
  productpage: LabPod;
  reviews: LabPod;
  curl: LabPod;
  sleep: LabPod;
}

function castResources(c: Cast): unknown[] {
  const workload = (name: string, ns: string, pod: LabPod, sa: string, labels: Record<string, string>, serves: boolean) => ({
    apiVersion: 'nodemesh.io/v1alpha1',
    kind: 'Workload',
    metadata: { name, namespace: ns, labels: { ...labels, 'nodemesh.io/lab-pod': pod.name } },
    spec: {
      serviceAccount: sa,
      node: pod.node,
      addresses: [pod.ip],
      ...(serves ? { ports: [{ name: 'http', port: PORT }] } : {}),
      netnsPath: pod.netnsPath,
      cgroupPath: pod.cgroup,
    },
  });
  // As Bookinfo's Services (port named http, no targetPort), with the address the lab gives them.
  const svc = (name: keyof typeof VIPS) => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default', labels: { app: name, service: name } },
    spec: { clusterIP: VIPS[name], selector: { app: name }, ports: [{ port: PORT, name: 'http' }] },
  });
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'legacy' } },
    workload('productpage-v1', 'default', c.productpage, 'bookinfo-productpage', { app: 'productpage', version: 'v1' }, true),
    workload('reviews-v1', 'default', c.reviews, 'bookinfo-reviews', { app: 'reviews', version: 'v1' }, true),
    workload('curl', 'default', c.curl, 'curl', { app: 'curl' }, false),
    workload('sleep', 'legacy', c.sleep, 'sleep', { app: 'sleep' }, false),
    svc('productpage'),
    svc('reviews'),
  ];
}

interface Edge {
  readonly label: string;
  readonly from: keyof Cast;
  /** host:port dialled from the source pod. */
  readonly target: (c: Cast) => string;
  readonly method: 'GET' | 'DELETE';
}

const VIA_SERVICE = (s: keyof typeof VIPS) => (): string => `${VIPS[s]}:${PORT}`;
const POD =
  (p: keyof Cast) =>
  (c: Cast): string =>
    `${c[p].ip}:${PORT}`;

/** What each edge must meet after each step; the same for both spellings. */
const STEPS: ReadonlyArray<{ step: string; edges: ReadonlyArray<[Edge, string]> }> = [
  {
    step: 'enrolled, no policy',
    edges: [
      [{ label: 'curl -> productpage', from: 'curl', target: VIA_SERVICE('productpage'), method: 'GET' }, 'allowed'],
      [{ label: 'reviews-v1 -> productpage', from: 'reviews', target: VIA_SERVICE('productpage'), method: 'GET' }, 'allowed'],
      [{ label: 'legacy sleep -> reviews pod (PERMISSIVE)', from: 'sleep', target: POD('reviews'), method: 'GET' }, 'allowed'],
    ],
  },
  {
    step: 'L4 policy',
    edges: [
      // the docs: "command terminated with exit code 56" (the connection is reset)
      [{ label: 'curl -> productpage', from: 'curl', target: VIA_SERVICE('productpage'), method: 'GET' }, 'refused by a node proxy'],
      [{ label: 'reviews-v1 -> productpage', from: 'reviews', target: VIA_SERVICE('productpage'), method: 'GET' }, 'refused by a node proxy'],
      [{ label: 'curl -> reviews (no policy)', from: 'curl', target: VIA_SERVICE('reviews'), method: 'GET' }, 'allowed'],
      [{ label: 'legacy sleep -> reviews pod (PERMISSIVE)', from: 'sleep', target: POD('reviews'), method: 'GET' }, 'allowed'],
    ],
  },
  {
    step: 'waypoint, L7 policy, L4 policy admitting the waypoint, STRICT',
    edges: [
      // the docs: works (GET from the curl pod)
      [{ label: 'curl GET productpage', from: 'curl', target: VIA_SERVICE('productpage'), method: 'GET' }, 'allowed'],
      // the docs: "RBAC: access denied" (not a GET; not the allowed identity)
      [{ label: 'curl DELETE productpage', from: 'curl', target: VIA_SERVICE('productpage'), method: 'DELETE' }, 'denied 403'],
      [{ label: 'reviews-v1 GET productpage', from: 'reviews', target: VIA_SERVICE('productpage'), method: 'GET' }, 'denied 403'],
      // around the waypoint, straight at the pod: the L4 policy admits only the gateway and the waypoint
      [{ label: 'curl -> productpage pod (bypass)', from: 'curl', target: POD('productpage'), method: 'GET' }, 'refused by a node proxy'],
      // the L7 policy is the productpage Service's alone
      [{ label: 'curl DELETE reviews', from: 'curl', target: VIA_SERVICE('reviews'), method: 'DELETE' }, 'allowed'],
      // STRICT: plaintext from outside the mesh
      [{ label: 'legacy sleep -> reviews pod (STRICT)', from: 'sleep', target: POD('reviews'), method: 'GET' }, 'refused by a node proxy'],
    ],
  },
];

privilegedDescribe('lab', "Istio's ambient example, unchanged, on live traffic = its nodemesh spelling (lab nmistio)", () => {
  const lab = labPerFile(LAB, { upArgs: ['--no-demo', '--pods-per-node', '2'], keepLogsAs: 'nm-istio-logs' });
  const tmp = mkdtempSync(join(tmpdir(), 'nm-istio-'));
  let topo: LabTopology;
  let cast: Cast;
  const kind = (k: string): KindInfo => resolveKind(k) as KindInfo;

  beforeAll(async () => {
    topo = lab.topo;
    expect(lab.up.code, lab.up.stdout + lab.up.stderr).toBe(0);
    const pod = (name: string): LabPod => topo.pods.find((p) => p.name === name) as LabPod;
    // productpage and curl on different nodes (HBONE between nodes); reviews next to productpage
    cast = { productpage: pod('pod1-1'), reviews: pod('pod1-2'), curl: pod('pod2-1'), sleep: pod('pod2-2') };
    const api = apiFor(LAB);
    // `--no-demo` made every pod a Workload in default; the cast replaces them
    for (const p of topo.pods) await api.delete(kind('Workload'), p.name, 'default').catch(() => undefined);
    await api.apply(castResources(cast));
    for (const [role, name] of [
      ['productpage', 'productpage'],
      ['reviews', 'reviews'],
    ] as const) {
      await startApp(topo, cast[role].name, ['http', '--port', String(PORT), '--name', name, '--pod', cast[role].name, '--node', cast[role].node]);
    }
  });

  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  let nth = 0;
  async function apply(yaml: string, ...extra: string[]): Promise<void> {
    const file = join(tmp, `${++nth}.yaml`);
    writeFileSync(file, yaml);
    const r = await cli(['apply', '-f', file, ...extra, '--lab', LAB]);
    expect(r.code, `nodemesh apply -f ${file}:\n${yaml}\n${r.stderr}`).toBe(0);
  }
  async function run(...args: string[]): Promise<void> {
    const r = await cli([...args, '--lab', LAB]);
    expect(r.code, `nodemesh ${args.join(' ')}: ${r.stderr}`).toBe(0);
  }

  /** What one edge met: every request the same, or 'mixed …'. */
  async function verdict(e: Edge): Promise<string> {
    const [host, port] = e.target(cast).split(':') as [string, string];
    const r = lastJson<{ codes: Record<string, number> }>(
      await nodeIn(topo, cast[e.from].name, HTTP_SCRIPT, [host, port, e.method, '/productpage', String(REQUESTS)]),
    );
    const codes = Object.keys(r.codes);
    if (codes.length !== 1) return `mixed ${JSON.stringify(r.codes)}`;
    const code = codes[0] as string;
    if (code === '200') return 'allowed';
    if (code === '403') return 'denied 403';
    // a node proxy refuses by closing the connection (curl's exit code 56 in Istio's docs)
    if (['ECONNRESET', 'socket hang up', 'ECONNREFUSED', 'EPIPE'].includes(code)) return 'refused by a node proxy';
    return `unexpected ${code}`;
  }

  const matrix = async (step: (typeof STEPS)[number]): Promise<string[]> => {
    const out: string[] = [];
    for (const [e] of step.edges) out.push(`${step.step} | ${e.label}: ${await verdict(e)}`);
    return out;
  };
  const wanted = (step: (typeof STEPS)[number]): string[] => step.edges.map(([e, v]) => `${step.step} | ${e.label}: ${v}`);

  /** Waits until every edge of a step meets its verdict (the config reached the proxies); the verdicts of the last round. */
  async function settle(spelling: string, step: (typeof STEPS)[number]): Promise<string[]> {
    const want = new Set(wanted(step));
    const t0 = Date.now();
    let last: string[] = [];
    let rounds = 0;
    await until(
      `"${step.step}" in force`,
      async () => {
        rounds++;
        last = await matrix(step);
        const off = last.filter((v) => !want.has(v));
        if (off.length) {
          process.stderr.write(`istio-example: ${spelling}, round ${rounds} at ${Date.now() - t0} ms: not yet ${off.join('; ')}\n`);
          lab.keepLogs(`${spelling}, "${step.step}" took more than one round`);
          // what the node proxies believed meanwhile (a slow convergence is diagnosed from this)
          for (const what of ['services', 'workloads', 'policies']) {
            const r = await cli(['node-config', what, '--lab', LAB]);
            process.stderr.write(`istio-example: node-config ${what}:\n${r.stdout}${r.stderr}\n`);
          }
        }
        return off.length === 0;
      },
      // After the takeback some edge stays off for 36–60 s on a loaded machine (which one, the
      // lines above say): a limit above that, so the verdicts are compared once it settles.
      90_000,
    ).catch(() => undefined); // the comparison in the test names the edges that differ
    process.stderr.write(`istio-example: ${spelling}, "${step.step}": ${rounds} round(s) of ${step.edges.length} edges, ${Date.now() - t0} ms\n`);
    return last;
  }

  async function enrolled(): Promise<string[]> {
    return [...(await enrolledOn(topo, 'node1')), ...(await enrolledOn(topo, 'node2'))].sort();
  }
  const CAST_ENROLLED = ['default/curl', 'default/productpage-v1', 'default/reviews-v1'];

  async function runSpelling(spelling: string, steps: { enroll: () => Promise<void>; l4: () => Promise<void>; l7: () => Promise<void> }): Promise<string[]> {
    const [none, l4, l7] = STEPS as [(typeof STEPS)[0], (typeof STEPS)[0], (typeof STEPS)[0]];
    await steps.enroll();
    await until('the cast to be enrolled (sleep, in legacy, is not)', async () => JSON.stringify(await enrolled()) === JSON.stringify(CAST_ENROLLED));
    const got = await settle(spelling, none);
    await steps.l4();
    got.push(...(await settle(spelling, l4)));
    await steps.l7();
    await until('the waypoint pod', async () => readWaypointPods(LAB).some((w) => w.gateway.name === 'waypoint' && w.gateway.namespace === 'default'), 30_000);
    got.push(...(await settle(spelling, l7)));
    return got;
  }

  const want = STEPS.flatMap(wanted);
  let istio: string[] = [];

  it("Istio's documents, applied with nodemesh apply -f, give the verdicts Istio's docs show", async () => {
    istio = await runSpelling('Istio', {
      enroll: () => apply(ISTIO_ENROLL),
      l4: () => apply(ISTIO_L4),
      l7: async () => {
        await apply(ISTIO_WAYPOINT);
        await apply(ISTIO_L7);
        await apply(ISTIO_STRICT, '-n', 'default');
      },
    });
    expect(istio).toEqual(want);
    // kept as written: `get` gives the Istio objects back in their own API group
    const api = apiFor(LAB);
    expect((await api.get(kind('AuthorizationPolicy'), 'productpage-waypoint', 'default')).apiVersion).toBe('security.istio.io/v1');
    expect((await api.get(kind('PeerAuthentication'), 'default', 'default')).apiVersion).toBe('security.istio.io/v1beta1');
  });

  it('taken back, then the nodemesh spelling gives the same verdicts', async () => {
    const api = apiFor(LAB);
    for (const [k, name] of [
      ['AuthorizationPolicy', 'productpage-waypoint'],
      ['AuthorizationPolicy', 'productpage-ztunnel'],
      ['PeerAuthentication', 'default'],
      ['Gateway', 'waypoint'],
    ] as const) {
      await api.delete(kind(k), name, 'default').catch(() => undefined);
    }
    // The Istio labels go; the namespace stays enrolled, in nodemesh's spelling (what `nodemesh
    // namespace enroll` writes), so the pods are not released and enrolled again.
    await api.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default', labels: { 'nodemesh.io/dataplane-mode': 'ambient' } } }]);
    const t0 = Date.now();
    await until('the waypoint to be gone', async () => readWaypointPods(LAB).length === 0, 30_000);
    process.stderr.write(`istio-example: taken back in ${Date.now() - t0} ms\n`);
    expect((await api.get<{ metadata: { labels?: Record<string, string> } }>(kind('Namespace'), 'default')).metadata.labels).toEqual({
      'nodemesh.io/dataplane-mode': 'ambient',
    });

    const got = await runSpelling('nodemesh', {
      enroll: () => run('namespace', 'enroll', 'default'),
      l4: () => apply(native(ISTIO_L4)),
      l7: async () => {
        await run('waypoint', 'apply', '-n', 'default', '--enroll-namespace');
        await apply(native(ISTIO_L7));
        await apply(native(ISTIO_STRICT), '-n', 'default');
      },
    });
    expect(got).toEqual(istio.length ? istio : want);
    expect(got).toEqual(want);
    expect((await api.get(kind('AuthorizationPolicy'), 'productpage-waypoint', 'default')).apiVersion).toBe('security.nodemesh.io/v1alpha1');
    const ns = await api.get<{ metadata: { labels?: Record<string, string> } }>(kind('Namespace'), 'default');
    expect(ns.metadata.labels).toEqual({ 'nodemesh.io/dataplane-mode': 'ambient', 'nodemesh.io/use-waypoint': 'waypoint' });
  });
});
