// The Kubernetes path end to end in the netns lab (lab 'nmka'): `nodemesh control --config-source
// kubernetes` in the lab's control netns reads the stand-in API server (test/support/kube-apiserver,
// a test fixture that follows the API server's list/watch protocol), the user's verbs go through the
// real kubectl, and node proxies in --pod-discovery=kubernetes mode authenticate to the CA with
// projected ServiceAccount tokens (TokenReview against the stand-in). Pods are laid out as kubelet +
// containerd lay them out, wired by Debian's real CNI plugins with the nodemesh CNI plugin chained
// last; this test plays kubelet: it runs the sandbox (CNI ADD) of a Pod object that is bound to its
// node, then reports the IP the CNI gave it in the Pod's status, then starts the container — so the
// Pod has no IP while its ADD waits (the order that needs Pods published before they have an IP).
//
// Where things listen: the stand-in serves on 127.0.0.1 of the host (kubectl, and this test as
// kubelet) and on 127.0.0.1 of the control netns, same port (the control plane; one kubeconfig for
// both). Node proxies talk only to the control plane (10.199.0.254:15012), never to the API server.
//
// Checks: a new pod of a namespace labelled with kubectl is captured before its first connection
// (its app's very first connect is HBONE/mTLS with the pods' SPIFFE IDs in both access logs; the
// server is STRICT through a PeerAuthentication applied with kubectl, so plaintext would fail);
// `kubectl delete pod` releases it with nothing left (no enrolment, pins, listeners, sandbox record,
// nothing holding its netns) and the control plane no longer publishes it.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { ClientRequestArgs } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cliEntry } from '../../common/paths';
import { ApiClient } from '../../control/api/client';
import { type KubeletPods, removeCgroupTree, type KubeSandbox } from '../../lab/kube/kubelet-pods';
import { spawnInLab } from '../../lab/spawn';
import type { LabTopology } from '../../lab/state';
import { run } from '../../lab/sys';
import { labUp } from '../../lab/up';
import { connectInNetns, listenInNetns } from '../../native/netns';
import { STATE_BASE } from '../../node-proxy/capture/pins';
import { installCniPlugin } from '../../node-proxy/cni/install';
import { adminJson, httpGetInNetns, waitFor } from '../capture/harness';
import { keepLogs, stopProc, tearDownMeshLab, type ControlPlaneProc, type Proc } from '../dataplane/mesh-lab';
import { kubectl } from '../support/kube-apiserver/kubectl';
import { StandInApiServer } from '../support/kube-apiserver/server';
import type { KubeObject } from '../support/kube-apiserver/types';
import { privilegedDescribe } from '../support/privileged';
import { scaled } from '../support/speed';
import { accessLines, ECHO, FIRST_CONNECT, type FirstConnect, holdersOf, kubeletsFor, startKubeNodeProxies, strictIn } from './fixture';

const LAB = 'nmka';
const NODES = ['node1', 'node2'] as const;
const TD = 'cluster.local';

privilegedDescribe('lab', 'Kubernetes through the API server: kubectl, nodemesh control --config-source kubernetes, kubelet-shaped pods (lab nmka)', () => {
  let topo: LabTopology;
  let work: string;
  let kubeconfig: string;
  let standIn: StandInApiServer | undefined;
  let cp: ControlPlaneProc | undefined;
  const proxies: Record<string, Proc | undefined> = {};
  const kubelets: Record<string, KubeletPods> = {};
  const socket = (node: string): string => join(work, `${node}-run`, 'cni.sock');
  const roots: Record<string, string> = { node1: `nm-${LAB}/kube-node1/kubepods.slice`, node2: `nm-${LAB}/kube-node2/kubepods` };

  const k = async (args: string[], input?: string): Promise<string> => {
    const r = await kubectl(kubeconfig, args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };

  /** A Pod object as a controller would create it and the scheduler bind it (spec.nodeName set). */
  const podManifest = (namespace: string, name: string, sa: string, node: string): string =>
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace, labels: { app: name } },
      spec: { nodeName: node, serviceAccountName: sa, containers: [{ name: 'app', image: 'node:20', ports: [{ name: 'echo', containerPort: 9000 }] }] },
    });

  /**
   * kubelet for a Pod bound to `node`: sandbox (CNI ADD: returns once the nodemesh plugin did), then
   * the Pod's status with the IP the CNI gave it, then the app container.
   */
  async function kubeletRuns(node: string, namespace: string, name: string, app: string[]) {
    const pod = standIn!.get('v1', 'Pod', name, namespace);
    if (!pod?.metadata.uid) throw new Error(`no Pod ${namespace}/${name}`);
    const t0 = Date.now();
    const sb = await kubelets[node]!.runPodSandbox({ namespace, name, uid: pod.metadata.uid, qos: 'besteffort' });
    const addMs = Date.now() - t0;
    const ip = String((sb.cniResult?.ips as Array<{ address?: string }> | undefined)?.[0]?.address ?? '').split('/')[0]!;
    expect(ip).toMatch(/^10\.200\.\d+\.\d+$/);
    const current = standIn!.get('v1', 'Pod', name, namespace) as KubeObject;
    current.status = {
      phase: 'Running',
      podIP: ip,
      podIPs: [{ ip }],
      hostIP: topo.nodes.find((n) => n.name === node)!.underlayIp,
      conditions: [
        { type: 'PodScheduled', status: 'True' },
        { type: 'Ready', status: 'True' },
      ],
    };
    standIn!.update(current, 'status');
    const c = kubelets[node]!.startContainer(sb, 'app', [process.execPath, '-e', ...app], ['ignore', 'pipe', 'pipe']);
    let out = '';
    c.child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    c.child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    return { sb, ip, addMs, output: () => out, exited: new Promise<void>((r) => c.child.once('exit', () => r())) };
  }

  /** What a node proxy knows of a workload (any node's), from its admin page. */
  const meshWorkload = async (node: string, namespace: string, name: string) =>
    (await adminJson<Array<{ namespace: string; name: string; addresses: string[] }>>(topo, node, '/mesh/workloads')).find(
      (w) => w.namespace === namespace && w.name === name,
    );

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nm-ka-'));
    const binDir = join(work, 'bin');
    installCniPlugin(binDir);
    ({ state: topo } = await labUp({ lab: LAB, nodes: 2, podsPerNode: 1 }));
    Object.assign(kubelets, kubeletsFor(topo, NODES, { work, binDir, roots, socket }));

    // The stand-in API server: on the host's loopback, and on the control netns' loopback (same port).
    standIn = await new StandInApiServer().start();
    const port = Number(new URL(standIn.url).port);
    await standIn.serveAlso(listenInNetns(topo.control.netnsPath, { host: '127.0.0.1', port }));
    kubeconfig = standIn.writeKubeconfig(join(work, 'kubeconfig'));

    // The node proxies' own pods (DaemonSet pods, hostNetwork here) and their projected tokens.
    standIn.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'nodemesh-system' } });
    for (const node of NODES) {
      const n = topo.nodes.find((x) => x.name === node)!;
      const pod = standIn.runPod({
        namespace: 'nodemesh-system',
        name: `nodemesh-node-${node}`,
        node,
        ip: n.underlayIp,
        serviceAccount: 'nodemesh-node',
        hostNetwork: true,
      });
      const token = standIn.issueToken({
        namespace: 'nodemesh-system',
        serviceAccount: 'nodemesh-node',
        audiences: ['nodemesh-ca'],
        pod: { name: pod.metadata.name!, uid: pod.metadata.uid! },
      });
      writeFileSync(join(work, `${node}.token`), token, { mode: 0o600 });
    }

    // The control plane, reading the cluster from the stand-in.
    const dataDir = join(work, 'control');
    const child = spawnInLab(
      topo,
      'control',
      [
        process.execPath,
        cliEntry,
        'control',
        '--config-source',
        'kubernetes',
        '--kubeconfig',
        kubeconfig,
        '--data-dir',
        dataDir,
        '--listen',
        '127.0.0.1:15014',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { NODEMESH_XDS_REQUIRE_NODE_TOKEN: '1' }, record: 'control' },
    );
    let text = '';
    child.stdout?.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const rootFile = join(work, 'mesh-root.pem');
    const netns = topo.control.netnsPath;
    const createConnection = ((opts: ClientRequestArgs, oncreate: (err: Error | null, socket?: unknown) => void) => {
      connectInNetns(netns, { host: '127.0.0.1', port: Number(opts.port ?? 15014), timeoutMs: 3000 }).then(
        (s) => oncreate(null, s),
        (e: Error) => oncreate(e),
      );
      return undefined;
    }) as unknown as ClientRequestArgs['createConnection'];
    cp = {
      child,
      log: () => text,
      exited,
      dataDir,
      api: new ApiClient({ server: 'http://127.0.0.1:15014', token: '', createConnection }),
      rootFile,
      tokenFile: (node) => join(work, `${node}.token`),
      cleanup: () => undefined,
    };
    await waitFor(
      "the control plane's readiness (synced from the stand-in)",
      async () => {
        if (child.exitCode !== null) throw new Error(`control plane exited: ${text}`);
        const r = await httpGetInNetns(netns, 15014, '/healthz/ready').catch(() => undefined);
        return r?.status === 200 ? true : undefined;
      },
      30_000,
    );
    writeFileSync(rootFile, execFileSync(process.execPath, [cliEntry, 'ca', 'root', '--data-dir', dataDir], { encoding: 'utf8' }));

    // The user: a namespace, labelled into the mesh with kubectl; STRICT mTLS for it.
    // (apply, not `kubectl create namespace`: the stand-in speaks JSON, not protobuf.)
    await k(
      ['apply', '--validate=false', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
          { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'echo', namespace: 'shop' } },
          { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'client', namespace: 'shop' } },
        ],
      }),
    );
    await k(['label', 'namespace', 'shop', 'nodemesh.io/dataplane-mode=ambient']);
    await k(['apply', '--validate=false', '-f', '-'], JSON.stringify(strictIn('shop')));

    await startKubeNodeProxies(topo, cp, NODES, { roots, socket }, proxies);
  });

  afterAll(async () => {
    const errors: string[] = [];
    for (const kl of Object.values(kubelets)) await kl.teardown().catch((e: Error) => errors.push(e.message));
    for (const n of NODES) await stopProc(proxies[n]);
    // NMKA_LOG_DIR=/some/dir keeps the node proxies' logs (with the teardown's DELs) and the control plane's.
    keepLogs(process.env.NMKA_LOG_DIR, { ...proxies, control: cp });
    await tearDownMeshLab(LAB, topo, [...NODES], cp);
    await standIn?.stop();
    if (topo) await removeCgroupTree(join(topo.cgroupMount, `nm-${LAB}`)).catch((e: Error) => errors.push(e.message));
    if (work) rmSync(work, { recursive: true, force: true });
    if (errors.length) throw new Error(errors.join('; '));
  });

  let client: KubeSandbox;

  it('a new pod of a namespace labelled with kubectl is captured before its first connection: its first connect is HBONE/mTLS', async () => {
    await k(['apply', '--validate=false', '-f', '-'], podManifest('shop', 'echo-0', 'echo', 'node2'));
    const echo = await kubeletRuns('node2', 'shop', 'echo-0', [ECHO]);
    await waitFor('the echo container to listen', async () => (echo.output().includes('listening') ? true : undefined));
    // The client's node proxy knows where echo-0 is once kubelet reported its IP.
    await waitFor('node1 to know echo-0 by its IP', async () =>
      (await meshWorkload('node1', 'shop', 'echo-0'))?.addresses.includes(echo.ip) ? true : undefined,
    );

    await k(['apply', '--validate=false', '-f', '-'], podManifest('shop', 'client-0', 'client', 'node1'));
    const pod = await kubeletRuns('node1', 'shop', 'client-0', [FIRST_CONNECT, echo.ip, '9000']);
    client = pod.sb;
    await Promise.race([pod.exited, new Promise((r) => setTimeout(r, scaled(20_000)))]);
    const result = JSON.parse(pod.output().trim().split('\n').pop() || '{"ok":false,"error":"no output"}') as FirstConnect;
    expect(result, pod.output()).toMatchObject({ ok: true, bytes: 65536, peer: '127.0.0.1:15001' });

    const srcPort = result.local!.slice(result.local!.lastIndexOf(':') + 1);
    const inbound = await waitFor('node2 access line for the first connection', async () =>
      accessLines(proxies.node2!.log()).find((l) => l.reporter === 'destination' && l.src.addr.startsWith(`${pod.ip}:`)),
    );
    expect(inbound).toMatchObject({
      protocol: 'HBONE',
      connection_security_policy: 'mutual_tls',
      src: { identity: `spiffe://${TD}/ns/shop/sa/client` },
      dst: { identity: `spiffe://${TD}/ns/shop/sa/echo` },
    });
    const outbound = await waitFor('node1 access line for the first connection', async () =>
      accessLines(proxies.node1!.log()).find((l) => l.reporter === 'source' && l.src.addr === `${pod.ip}:${srcPort}`),
    );
    expect(outbound).toMatchObject({ protocol: 'HBONE', dst: { identity: `spiffe://${TD}/ns/shop/sa/echo` } });
    // kubectl sees what kubelet reported.
    expect((await k(['get', 'pod', 'client-0', '-n', 'shop', '-o', 'jsonpath={.status.podIP}'])).trim()).toBe(pod.ip);
    console.log(`CNI ADD of a new pod through the API server path (loopback + bridge/host-local + nodemesh): echo ${echo.addMs} ms, client ${pod.addMs} ms`);
  });

  it('kubectl delete pod releases the pod with nothing left, and the control plane stops publishing it', async () => {
    const node1 = topo.nodes.find((n) => n.name === 'node1')!;
    const pinDir = join(node1.bpffsDir, 'workloads', 'shop_client-0');
    const records = join(STATE_BASE, `${LAB}-node1`, 'enrolment.json');
    const sandboxes = join(STATE_BASE, `${LAB}-node1`, 'cni-sandboxes.json');
    expect(existsSync(pinDir)).toBe(true);
    const inode = statSync(client.netnsPath).ino;
    const meshPorts = (): Promise<string[]> =>
      run('nsenter', [`--net=${client.netnsPath}`, 'ss', '-Hltn']).then((out) =>
        [...new Set([...out.matchAll(/:(15001|15006|15008)\s/g)].map((m) => m[1] as string))].sort(),
      );
    expect(await meshPorts()).toEqual(['15001', '15006', '15008']);

    await k(['delete', 'pod', 'client-0', '-n', 'shop', '--wait=false']);
    // kubelet stops the pod: containers, pause, CNI DEL, netns, cgroup.
    await kubelets.node1!.removePod(client, {
      afterCniDel: async () => {
        expect(await meshPorts()).toEqual([]);
        expect((await adminJson<Array<{ key: string }>>(topo, 'node1', '/workloads')).map((w) => w.key)).not.toContain('shop/client-0');
        expect(existsSync(pinDir)).toBe(false);
        expect(readFileSync(records, 'utf8')).not.toContain('client-0');
      },
    });
    expect(holdersOf(inode)).toEqual([]);
    await waitFor('both node proxies to forget shop/client-0', async () =>
      (await meshWorkload('node1', 'shop', 'client-0')) || (await meshWorkload('node2', 'shop', 'client-0')) ? undefined : true,
    );
    await waitFor('the sandbox record to be dropped', async () => (readFileSync(sandboxes, 'utf8').includes('client-0') ? undefined : true));
    expect((await k(['get', 'pods', '-n', 'shop', '-o', 'name'])).trim()).toBe('pod/echo-0');
    expect((await adminJson<Array<{ key: string }>>(topo, 'node2', '/workloads')).map((w) => w.key)).toContain('shop/echo-0');
  });
});
