// Shared by the Kubernetes-shaped lab tests: the apps the pods run, access-log lines, kubelet +
// containerd per node wired by Debian's CNI plugins with the nodemesh plugin chained last, and
// who still holds a network namespace.
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { CniChain, type CniConfList } from '../../lab/kube/cni-chain';
import { KubeletPods } from '../../lab/kube/kubelet-pods';
import type { LabTopology } from '../../lab/state';
import { waitFor } from '../capture/harness';
import { startMeshProxy, waitMeshReady, type ControlPlaneProc, type Proc } from '../dataplane/mesh-lab';

// Debian/Ubuntu and Arch put the plugins in /usr/lib/cni, Fedora in /usr/libexec/cni, upstream in /opt/cni/bin.
export const CNI_BINS = ['/usr/lib/cni', '/usr/libexec/cni', '/opt/cni/bin'];

/** A container that serves: echoes every byte back. */
export const ECHO = `require('net').createServer({ allowHalfOpen: true }, (s) => s.pipe(s)).listen(9000, '0.0.0.0', () => console.log('listening'));`;
/** A container whose first instruction is a connect: sends 64 KiB, reads the echo, prints what it saw. */
export const FIRST_CONNECT = `
const net = require('net'), crypto = require('crypto');
const [host, port] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port), allowHalfOpen: true });
const sent = crypto.randomBytes(65536), got = [];
let peer, local;
s.on('connect', () => { peer = s.remoteAddress + ':' + s.remotePort; local = s.localAddress + ':' + s.localPort; s.end(sent); });
s.on('data', (d) => got.push(d));
s.on('end', () => { const b = Buffer.concat(got); console.log(JSON.stringify({ ok: b.equals(sent), bytes: b.length, peer, local })); });
s.on('error', (e) => console.log(JSON.stringify({ ok: false, error: e.code || e.message })));
`;

export interface FirstConnect {
  ok: boolean;
  bytes?: number;
  peer?: string;
  local?: string;
  error?: string;
}

export interface AccessLine {
  reporter: string;
  protocol: string;
  connection_security_policy?: string;
  src: { addr: string; identity?: string; workload?: string };
  dst: { addr: string; identity?: string; workload?: string };
}

export const accessLines = (log: string): AccessLine[] =>
  log
    .split('\n')
    .filter((l) => l.includes('"component":"access"'))
    .map((l) => JSON.parse(l) as AccessLine);

/**
 * kubelet + containerd on each node: kubepods under `roots[node]`, netns named nm-<lab>-cni-…, the
 * loopback network, then bridge + host-local (addresses .100–.150 of the node's pod range) with
 * the nodemesh plugin (from binDir) chained last, talking to `socket(node)`.
 */
export function kubeletsFor(
  topo: LabTopology,
  nodes: readonly string[],
  o: { work: string; binDir: string; roots: Record<string, string>; socket: (node: string) => string },
): Record<string, KubeletPods> {
  const out: Record<string, KubeletPods> = {};
  for (const node of nodes) {
    const n = topo.nodes.find((x) => x.name === node)!;
    const conf: CniConfList = {
      cniVersion: '1.0.0',
      name: 'nm-kube',
      plugins: [
        {
          type: 'bridge',
          bridge: n.podBridge,
          isGateway: false,
          ipMasq: false,
          ipam: {
            type: 'host-local',
            dataDir: join(o.work, `ipam-${node}`),
            ranges: [[{ subnet: n.podCidr, rangeStart: `10.200.${n.index}.100`, rangeEnd: `10.200.${n.index}.150`, gateway: n.podGateway }]],
            routes: [{ dst: '0.0.0.0/0' }],
          },
        },
        { type: 'nodemesh', socket: o.socket(node), timeoutSeconds: 30 },
      ],
    };
    const loopback: CniConfList = { cniVersion: '1.0.0', name: 'cni-loopback', plugins: [{ type: 'loopback' }] };
    out[node] = new KubeletPods(
      { cgroupMount: topo.cgroupMount, kubepodsRoot: o.roots[node]!, netnsPrefix: `nm-${topo.lab}-`, nodeNetnsPath: n.netnsPath },
      {
        loopback: new CniChain(loopback, [o.binDir, ...CNI_BINS], n.netnsPath),
        network: new CniChain(conf, [o.binDir, ...CNI_BINS], n.netnsPath),
      },
    );
  }
  return out;
}

/** PeerAuthentication STRICT for a namespace, in nodemesh's spelling. */
export const strictIn = (namespace: string) => ({
  apiVersion: 'security.nodemesh.io/v1alpha1',
  kind: 'PeerAuthentication',
  metadata: { name: 'strict', namespace },
  spec: { mtls: { mode: 'STRICT' } },
});

/**
 * A node proxy per node as the DaemonSet runs it on Kubernetes (pods discovered from the API, the
 * CNI socket, the node's kubepods root), each ready and listening on its CNI socket.
 */
export async function startKubeNodeProxies(
  topo: LabTopology,
  cp: ControlPlaneProc,
  nodes: readonly string[],
  o: { roots: Record<string, string>; socket: (node: string) => string },
  into: Record<string, Proc | undefined>,
): Promise<void> {
  for (const node of nodes) {
    into[node] = startMeshProxy(topo, cp, node, [
      '--pod-discovery=kubernetes',
      `--cgroup-root=${topo.cgroupMount}`,
      '--cni-socket',
      o.socket(node),
      '--kubepods-root',
      o.roots[node]!,
    ]);
  }
  await Promise.all(nodes.map((n) => waitMeshReady(topo, n, into[n]!)));
  await waitFor('the CNI sockets', async () => (nodes.every((n) => existsSync(o.socket(n))) ? true : undefined));
}

/** Inodes of network namespaces a process (any of its threads, or an open fd) holds. */
export function netnsHeldBy(pid: number): Set<number> {
  const out = new Set<number>();
  const add = (link: string): void => {
    const m = /^net:\[(\d+)\]$/.exec(link);
    if (m) out.add(Number(m[1]));
  };
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    try {
      add(readlinkSync(`/proc/${pid}/task/${t}/ns/net`));
    } catch {
      /* thread gone */
    }
  }
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        add(readlinkSync(`/proc/${pid}/fd/${fd}`));
      } catch {
        /* closed meanwhile */
      }
    }
  } catch {
    /* process gone */
  }
  return out;
}

/** Every process on the host that holds the netns with this inode. */
export function holdersOf(inode: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => netnsHeldBy(pid).has(inode));
}
