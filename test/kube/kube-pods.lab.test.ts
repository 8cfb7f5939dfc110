// Kubernetes-shaped pods in the netns lab (lab 'nmkp'): pods laid out as kubelet + containerd lay
// them out (kubepods slices/scopes — node1 with the systemd driver's layout, node2 with the cgroupfs
// driver's — a pause process holding the netns), wired by Debian's real CNI plugins (loopback,
// bridge + host-local) with the nodemesh CNI plugin chained after them, and node proxies in
// --kubernetes mode that learn each pod's sandbox from the plugin. The control plane here is the
// embedded store (a Workload per pod, without netns/cgroup: the node proxy finds those itself).
//
// Checks: a pod of an ambient namespace is captured before its first connection (its app's very
// first connect goes through the node proxy and mTLS, with STRICT on the server so plaintext would
// be refused); the expected SPIFFE IDs on both sides; a pod outside the mesh is left alone and is
// captured once its namespace is labelled (pods already running); a deleted pod is released by
// the CNI DEL with nothing left (no enrolment, no pins, no listener, nothing holding its netns).
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kindInfo } from '../../control/resources/kinds';
import { type KubeletPods, removeCgroupTree, type KubeSandbox } from '../../lab/kube/kubelet-pods';
import type { LabTopology } from '../../lab/state';
import { labUp } from '../../lab/up';
import { run } from '../../lab/sys';
import { installCniPlugin } from '../../node-proxy/cni/install';
import { STATE_BASE } from '../../node-proxy/capture/pins';
import { adminJson, waitFor } from '../capture/harness';
import { keepLogs, startControlPlane, startMeshProxy, stopProc, tearDownMeshLab, waitMeshReady, type ControlPlaneProc, type Proc } from '../dataplane/mesh-lab';
import { privilegedDescribe } from '../support/privileged';
import { scaled } from '../support/speed';
import { accessLines, ECHO, FIRST_CONNECT, type FirstConnect, holdersOf, kubeletsFor, netnsHeldBy, startKubeNodeProxies, strictIn } from './fixture';

const LAB = 'nmkp';
const NODES = ['node1', 'node2'] as const;
const TD = 'cluster.local';
const uid = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

privilegedDescribe('lab', 'Kubernetes-shaped pods: kubelet cgroup layout, real CNI chain, nodemesh CNI plugin (lab nmkp)', () => {
  let topo: LabTopology;
  let cp: ControlPlaneProc | undefined;
  let work: string;
  const proxies: Record<string, Proc | undefined> = {};
  const kubelets: Record<string, KubeletPods> = {};
  const socket = (node: string): string => join(work, `${node}-run`, 'cni.sock');
  const roots: Record<string, string> = { node1: `nm-${LAB}/kube-node1/kubepods.slice`, node2: `nm-${LAB}/kube-node2/kubepods` };
  const ns = (name: string, ambient: boolean) => ({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: ambient ? { 'nodemesh.io/dataplane-mode': 'ambient' } : {} },
  });
  /** The API side of a pod scheduled on a node: a Workload without netns/cgroup (as a Pod is). */
  const podResource = (namespace: string, name: string, sa: string, node: string, ip: string) => ({
    apiVersion: 'nodemesh.io/v1alpha1',
    kind: 'Workload',
    metadata: { name, namespace, labels: { app: name } },
    spec: { serviceAccount: sa, node, addresses: [ip], ports: [{ name: 'echo', port: 9000 }] },
  });

  /** "kubelet": the API has the pod; the runtime starts its sandbox through the CNI chain, then its container. */
  async function startPod(node: string, namespace: string, name: string, sa: string, ip: string, n: number, app: string[]) {
    await cp!.api.apply([podResource(namespace, name, sa, node, ip)]);
    const t0 = Date.now();
    const sb = await kubelets[node]!.runPodSandbox({ namespace, name, uid: uid(n), qos: n % 2 ? 'burstable' : 'besteffort', ip });
    const addMs = Date.now() - t0;
    const c = kubelets[node]!.startContainer(sb, 'app', [process.execPath, '-e', ...app], ['ignore', 'pipe', 'pipe']);
    let out = '';
    c.child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    c.child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    return { sb, addMs, output: () => out, exited: new Promise<void>((r) => c.child.once('exit', () => r())) };
  }

  async function firstConnect(
    node: string,
    namespace: string,
    name: string,
    sa: string,
    ip: string,
    n: number,
    to: string,
  ): Promise<{ result: FirstConnect; addMs: number; sb: KubeSandbox }> {
    const pod = await startPod(node, namespace, name, sa, ip, n, [FIRST_CONNECT, to, '9000']);
    await Promise.race([pod.exited, new Promise((r) => setTimeout(r, scaled(20_000)))]);
    const line = pod.output().trim().split('\n').pop() ?? '';
    let result: FirstConnect;
    try {
      result = JSON.parse(line) as FirstConnect;
    } catch {
      result = { ok: false, error: `no result: ${pod.output()}` };
    }
    return { result, addMs: pod.addMs, sb: pod.sb };
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nm-kp-'));
    const binDir = join(work, 'bin');
    installCniPlugin(binDir);
    ({ state: topo } = await labUp({ lab: LAB, nodes: 2, podsPerNode: 1 }));
    Object.assign(kubelets, kubeletsFor(topo, NODES, { work, binDir, roots, socket }));
    cp = await startControlPlane(topo, [...NODES]);
    await cp.api.apply([ns('shop', true), ns('late', false), strictIn('shop')]);
    await startKubeNodeProxies(topo, cp, NODES, { roots, socket }, proxies);
  });

  afterAll(async () => {
    // NMKP_LOG_DIR=/some/dir keeps the control plane's and node proxies' logs.
    keepLogs(process.env.NMKP_LOG_DIR, { ...proxies, control: cp });
    const errors: string[] = [];
    for (const k of Object.values(kubelets)) await k.teardown().catch((e: Error) => errors.push(e.message));
    for (const n of NODES) await stopProc(proxies[n]);
    await tearDownMeshLab(LAB, topo, [...NODES], cp);
    if (topo) await removeCgroupTree(join(topo.cgroupMount, `nm-${LAB}`)).catch((e: Error) => errors.push(e.message));
    if (work) rmSync(work, { recursive: true, force: true });
    if (errors.length) throw new Error(errors.join('; '));
  });

  let echo: KubeSandbox;
  let client: KubeSandbox;

  it("captures a new pod of an ambient namespace before its first connection: the app's first connect is proxied over mTLS", async () => {
    const server = await startPod('node2', 'shop', 'echo-0', 'echo', '10.200.2.100', 1, [ECHO]);
    echo = server.sb;
    await waitFor('the echo container to listen', async () => (server.output().includes('listening') ? true : undefined));
    expect((await adminJson<Array<{ key: string }>>(topo, 'node2', '/workloads')).map((w) => w.key)).toContain('shop/echo-0');

    const { result, addMs, sb } = await firstConnect('node1', 'shop', 'client-0', 'client', '10.200.1.100', 2, '10.200.2.100');
    client = sb;
    expect(result, JSON.stringify(result)).toMatchObject({ ok: true, bytes: 65536, peer: '127.0.0.1:15001' });
    // Both node proxies logged that very connection (the client's source port) as mutual TLS with the pods' SPIFFE IDs.
    const port = result.local!.slice(result.local!.lastIndexOf(':') + 1);
    const line = await waitFor('node2 access line for the first connection', async () =>
      accessLines(proxies.node2!.log()).find((l) => l.reporter === 'destination' && l.src.addr.startsWith('10.200.1.100:')),
    );
    expect(line).toMatchObject({
      protocol: 'HBONE',
      connection_security_policy: 'mutual_tls',
      src: { identity: `spiffe://${TD}/ns/shop/sa/client` },
      dst: { identity: `spiffe://${TD}/ns/shop/sa/echo` },
    });
    // The source side writes its line when its half of the tunnel closes, batched with other log lines: wait for it too.
    const out = await waitFor('node1 access line for the first connection', async () =>
      accessLines(proxies.node1!.log()).find((l) => l.reporter === 'source' && l.src.addr === `10.200.1.100:${port}`),
    );
    expect(out, proxies.node1!.log().slice(-3000)).toMatchObject({ protocol: 'HBONE', dst: { identity: `spiffe://${TD}/ns/shop/sa/echo` } });
    console.log(`CNI ADD of a captured pod (loopback + bridge/host-local + nodemesh): ${addMs} ms`);
  });

  it('leaves a pod of a namespace without the label alone, and captures it (already running) once the namespace is labelled', async () => {
    const pod = await startPod('node1', 'late', 'late-0', 'late', '10.200.1.101', 3, [ECHO]);
    await waitFor('the late-0 container to listen', async () => (pod.output().includes('listening') ? true : undefined));
    expect((await adminJson<Array<{ key: string }>>(topo, 'node1', '/workloads')).map((w) => w.key)).not.toContain('late/late-0');
    // Plaintext from outside the mesh reaches STRICT shop/echo-0 and is refused.
    const probe = (): Promise<FirstConnect> =>
      new Promise((resolve) => {
        const c = kubelets.node1!.startContainer(
          pod.sb,
          'probe',
          [process.execPath, '-e', FIRST_CONNECT, '10.200.2.100', '9000'],
          ['ignore', 'pipe', 'ignore'],
        );
        let o = '';
        c.child.stdout?.on('data', (d: Buffer) => (o += d.toString()));
        c.child.once('exit', () => resolve(JSON.parse(o.trim() || '{"ok":false,"error":"no output"}') as FirstConnect));
      });
    const before = await probe();
    expect(before.ok).toBe(false);
    expect(before.peer).not.toBe('127.0.0.1:15001');

    await cp!.api.apply([ns('late', true)]);
    await waitFor('late/late-0 to be enrolled (pod already running, found through its sandbox)', async () => {
      const w = await adminJson<Array<{ key: string; listeners: string[]; cgroupPath: string; netnsPath: string }>>(topo, 'node1', '/workloads');
      return w.find((x) => x.key === 'late/late-0' && x.listeners.length > 0);
    });
    const wl = (await adminJson<Array<{ key: string; cgroupPath: string; netnsPath: string }>>(topo, 'node1', '/workloads')).find(
      (x) => x.key === 'late/late-0',
    )!;
    expect(wl.cgroupPath).toBe(join(topo.cgroupMount, roots.node1!, 'kubepods-burstable.slice', `kubepods-burstable-pod${uid(3).replace(/-/g, '_')}.slice`));
    expect(wl.netnsPath).toBe(pod.sb.netnsPath);
    const after = await waitFor('a connection from late-0 over mTLS', async () => {
      const r = await probe();
      return r.ok ? r : undefined;
    });
    expect(after).toMatchObject({ ok: true, peer: '127.0.0.1:15001', bytes: 65536 });
    const line = await waitFor('node2 access line from late/late-0', async () =>
      accessLines(proxies.node2!.log()).find((l) => l.reporter === 'destination' && l.src.identity === `spiffe://${TD}/ns/late/sa/late`),
    );
    expect(line).toMatchObject({ protocol: 'HBONE', connection_security_policy: 'mutual_tls', dst: { identity: `spiffe://${TD}/ns/shop/sa/echo` } });
  });

  it('a restarted node proxy finds the running pods again by discovery (no CNI event, no sandbox records) and adopts their capture', async () => {
    await stopProc(proxies.node2);
    // Forget the CNI's sandbox records: only the kernel (kubepods cgroups, the pause process's netns
    // and its address) tells the new node proxy where echo-0 is.
    rmSync(join(STATE_BASE, `${LAB}-node2`, 'cni-sandboxes.json'), { force: true });
    const before = statSync(echo.netnsPath).ino;
    proxies.node2 = startMeshProxy(topo, cp!, 'node2', ['--kubernetes', '--cni-socket', socket('node2'), '--kubepods-root', roots.node2!]);
    await waitMeshReady(topo, 'node2', proxies.node2);
    const w = (await adminJson<Array<{ key: string; netnsPath: string; listeners: string[] }>>(topo, 'node2', '/workloads')).find(
      (x) => x.key === 'shop/echo-0',
    );
    expect(w?.listeners.length).toBeGreaterThan(0);
    expect(statSync(w!.netnsPath).ino).toBe(before);
    // the node proxy writes its log in the background, within ~10 ms (common/log.ts)
    await waitFor('node2 to log its adoption', async () => (/adopted pinned enrolment/.test(proxies.node2?.log() ?? '') ? true : undefined), 5000);
    const late = kubelets.node1!.all.find((sb) => sb.spec.name === 'late-0')!;
    const r = await new Promise<FirstConnect>((resolve) => {
      const c = kubelets.node1!.startContainer(late, 'probe', [process.execPath, '-e', FIRST_CONNECT, '10.200.2.100', '9000'], ['ignore', 'pipe', 'ignore']);
      let o = '';
      c.child.stdout?.on('data', (d: Buffer) => (o += d.toString()));
      c.child.once('exit', () => resolve(JSON.parse(o.trim() || '{"ok":false,"error":"no output"}') as FirstConnect));
    });
    expect(r).toMatchObject({ ok: true, bytes: 65536, peer: '127.0.0.1:15001' });
  });

  it('releases a deleted pod on its CNI DEL with nothing left: no enrolment, no pins, no listener, nothing holding its netns', async () => {
    const node1 = topo.nodes.find((n) => n.name === 'node1')!;
    const pinDir = join(node1.bpffsDir, 'workloads', 'shop_client-0');
    const records = join(STATE_BASE, `${LAB}-node1`, 'enrolment.json');
    expect(existsSync(pinDir)).toBe(true);
    const inode = statSync(client.netnsPath).ino;
    const proxyPid = proxies.node1!.child.pid!;
    const meshPorts = (): Promise<string[]> =>
      run('nsenter', [`--net=${client.netnsPath}`, 'ss', '-Hltn']).then((out) =>
        [...new Set([...out.matchAll(/:(15001|15006|15008)\s/g)].map((m) => m[1] as string))].sort(),
      );
    expect(await meshPorts()).toEqual(['15001', '15006', '15008']); // the node proxy's listeners in the pod, while enrolled

    // containers, pause, CNI DEL (the nodemesh plugin first), then the netns and the pod cgroup
    await kubelets.node1!.removePod(client, {
      afterCniDel: async () => {
        // The DEL returned only after the node proxy released the pod: nothing to wait for.
        expect(await meshPorts()).toEqual([]);
        expect((await adminJson<Array<{ key: string }>>(topo, 'node1', '/workloads')).map((w) => w.key)).not.toContain('shop/client-0');
        expect(existsSync(pinDir)).toBe(false);
        expect(readFileSync(records, 'utf8')).not.toContain('client-0');
      },
    });
    expect(netnsHeldBy(proxyPid).has(inode)).toBe(false); // no netns worker thread, no fd
    expect(holdersOf(inode)).toEqual([]);
    await cp!.api.delete(kindInfo('Workload')!, 'client-0', 'shop');
    // echo-0 on node2 is untouched.
    expect((await adminJson<Array<{ key: string }>>(topo, 'node2', '/workloads')).map((w) => w.key)).toContain('shop/echo-0');
    expect(echo.stopped).toBe(false);
  });
});
