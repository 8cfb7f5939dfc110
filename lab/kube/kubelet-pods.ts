// Lab pods laid out as kubelet + containerd lay them out on a node (cgroup v2):
// - kubelet makes the pod's cgroup (kubelet-cgroups.ts: `kubepods.slice/kubepods-<qos>.slice/
//   kubepods-<qos>-pod<uid_>.slice`, or the cgroupfs driver's `kubepods/<qos>/pod<uid>`), below a
//   configurable kubepods root so a lab or test keeps it in a throwaway `nm-` tree;
// - containerd makes the sandbox netns (`/run/netns/<prefix>cni-<random>`), runs the CNI network
//   list for it (loopback as its own network first, then the cluster's list, the nodemesh plugin
//   chained last), then starts the sandbox's "pause" process in `cri-containerd-<sandbox id>.scope`
//   holding the netns — here coreutils `sleep infinity`, which does what pause does: nothing;
// - containers run in the same netns, each in `cri-containerd-<container id>.scope`.
// Stopping a sandbox is containerd's order: containers, then pause, then CNI DEL (reverse order),
// then the netns; kubelet then removes the pod cgroup. Everything is named and tracked, so
// teardown() removes exactly what was made.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { containerScopeName, podCgroupPath, type QosClass } from '../../node-proxy/kubernetes/kubelet-cgroups';
import { cgroupPids, cgroupTreeDeepestFirst, run, sleep } from '../sys';
import type { CniChain, CniResult } from './cni-chain';

export interface KubeletShape {
  readonly cgroupMount: string;
  /** kubelet's kubepods root relative to the mount, e.g. `nm-lab/kube-node1/kubepods.slice`. */
  readonly kubepodsRoot: string;
  /** Prefix of the netns names (`nm-<lab>-`). */
  readonly netnsPrefix: string;
  /** The node's netns path: where the CNI plugins run (the runtime's netns). */
  readonly nodeNetnsPath?: string;
}

export interface KubePodSpec {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly qos: QosClass;
  /**
   * An address to ask host-local for (CNI_ARGS `IP=`), so that a lab whose control plane needs the
   * address up front can name it; without it host-local picks the next free one.
   */
  readonly ip?: string;
}

export interface KubeContainer {
  readonly id: string;
  readonly name: string;
  readonly cgroup: string;
  readonly child: ChildProcess;
  readonly pid: number;
}

export interface KubeSandbox {
  readonly spec: KubePodSpec;
  /** Absolute path of the pod cgroup. */
  readonly podCgroup: string;
  readonly sandboxId: string;
  readonly netnsName: string;
  readonly netnsPath: string;
  pause?: KubeContainer;
  readonly containers: KubeContainer[];
  cniResult?: CniResult;
  stopped: boolean;
}

export interface KubeCni {
  /** containerd's loopback network (the `loopback` plugin alone). */
  readonly loopback: CniChain;
  /** The cluster's network list (bridge + host-local, the nodemesh plugin chained after). */
  readonly network: CniChain;
}

const ENTER_CGROUP = 'echo $$ > "$0" && exec "$@"';
const hexId = (): string => randomBytes(32).toString('hex');

export class KubeletPods {
  private readonly sandboxes: KubeSandbox[] = [];

  constructor(
    readonly shape: KubeletShape,
    private readonly cni?: KubeCni,
  ) {}

  get all(): readonly KubeSandbox[] {
    return this.sandboxes;
  }

  /** kubelet: the pod's cgroup (QoS slice first), absolute path. */
  podCgroup(spec: KubePodSpec): string {
    return join(this.shape.cgroupMount, podCgroupPath(this.shape.kubepodsRoot, spec.uid, spec.qos));
  }

  private cniArgs(sb: KubeSandbox): { containerId: string; netns: string; ifName: string; args: Record<string, string> } {
    return {
      containerId: sb.sandboxId,
      netns: sb.netnsPath,
      ifName: 'eth0',
      args: {
        IgnoreUnknown: '1',
        K8S_POD_NAMESPACE: sb.spec.namespace,
        K8S_POD_NAME: sb.spec.name,
        K8S_POD_INFRA_CONTAINER_ID: sb.sandboxId,
        K8S_POD_UID: sb.spec.uid,
        ...(sb.spec.ip ? { IP: sb.spec.ip } : {}),
      },
    };
  }

  /**
   * kubelet + containerd RunPodSandbox: pod cgroup, netns, CNI ADD (loopback, then the network list —
   * which returns only once the nodemesh plugin returned), then the pause process.
   */
  async runPodSandbox(spec: KubePodSpec): Promise<KubeSandbox> {
    const podCgroup = this.podCgroup(spec);
    mkdirSync(podCgroup, { recursive: true });
    const sandboxId = hexId();
    const netnsName = `${this.shape.netnsPrefix}cni-${sandboxId.slice(0, 8)}`;
    const sb: KubeSandbox = { spec, podCgroup, sandboxId, netnsName, netnsPath: `/run/netns/${netnsName}`, containers: [], stopped: false };
    this.sandboxes.push(sb);
    await run('ip', ['netns', 'add', netnsName]);
    if (this.cni) {
      await this.cni.loopback.add(this.cniArgs(sb));
      sb.cniResult = await this.cni.network.add(this.cniArgs(sb));
    } else {
      await run('ip', ['-n', netnsName, 'link', 'set', 'lo', 'up']);
    }
    sb.pause = this.spawnIn(sb, 'pause', sandboxId, ['sleep', 'infinity'], 'ignore');
    return sb;
  }

  /** containerd: a container process in the sandbox's netns and its own scope below the pod cgroup. */
  startContainer(sb: KubeSandbox, name: string, argv: string[], stdio: StdioOptions = 'pipe', env?: NodeJS.ProcessEnv): KubeContainer {
    if (sb.stopped) throw new Error(`sandbox of ${sb.spec.namespace}/${sb.spec.name} is stopped`);
    const c = this.spawnIn(sb, name, hexId(), argv, stdio, env);
    sb.containers.push(c);
    return c;
  }

  private spawnIn(sb: KubeSandbox, name: string, id: string, argv: string[], stdio: StdioOptions, env?: NodeJS.ProcessEnv): KubeContainer {
    const cgroup = join(sb.podCgroup, containerScopeName(id));
    mkdirSync(cgroup, { recursive: true });
    const child = spawn('nsenter', [`--net=${sb.netnsPath}`, '--', 'sh', '-c', ENTER_CGROUP, join(cgroup, 'cgroup.procs'), ...argv], {
      stdio,
      env: { ...process.env, ...env },
    });
    if (child.pid === undefined) throw new Error(`could not start ${name} in ${sb.spec.namespace}/${sb.spec.name}`);
    return { id, name, cgroup, child, pid: child.pid };
  }

  /** containerd StopPodSandbox + RemovePodSandbox, then kubelet removes the pod cgroup. */
  async removePod(sb: KubeSandbox, hooks: { afterCniDel?: () => Promise<void> | void } = {}): Promise<void> {
    if (sb.stopped) return;
    sb.stopped = true;
    for (const c of [...sb.containers, ...(sb.pause ? [sb.pause] : [])]) await stop(c);
    let cniError: Error | undefined;
    if (this.cni && existsSync(sb.netnsPath)) {
      try {
        await this.cni.network.del(this.cniArgs(sb), sb.cniResult);
        await this.cni.loopback.del(this.cniArgs(sb));
      } catch (err) {
        cniError = err as Error;
      }
    }
    try {
      if (!cniError) await hooks.afterCniDel?.();
    } finally {
      await run('ip', ['netns', 'del', sb.netnsName]).catch(() => undefined);
      await removeCgroupTree(sb.podCgroup);
    }
    if (cniError) throw cniError;
  }

  /** Removes every sandbox made here and the kubepods tree (QoS slices, the root). */
  async teardown(): Promise<void> {
    const errors: string[] = [];
    for (const sb of this.sandboxes) await this.removePod(sb).catch((e: Error) => errors.push(e.message));
    const root = join(this.shape.cgroupMount, this.shape.kubepodsRoot);
    await removeCgroupTree(root).catch((e: Error) => errors.push(e.message));
    if (errors.length) throw new Error(`kubelet-shaped pods teardown: ${errors.join('; ')}`);
  }
}

async function stop(c: KubeContainer): Promise<void> {
  if (c.child.exitCode !== null || c.child.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.child.once('exit', () => r()));
  c.child.kill('SIGKILL');
  await Promise.race([exited, sleep(5000)]);
}

/** Kills what still runs in a cgroup tree and removes it, deepest first. */
export async function removeCgroupTree(dir: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const tree = cgroupTreeDeepestFirst(dir);
    if (tree.length === 0) return;
    for (const d of tree)
      for (const pid of cgroupPids(d)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    let left = 0;
    for (const d of tree) {
      try {
        rmdirSync(d);
      } catch {
        left++;
      }
    }
    if (left === 0) return;
    await sleep(100);
  }
  throw new Error(`cgroup ${dir} could not be removed (processes keep running in it)`);
}
