// Pure: the capture settings of a Kubernetes pod, from the control plane's Workload (identity,
// mesh membership, addresses once the pod has them) and what this node knows locally (the CNI's
// sandbox record, the pod's cgroup found from its UID, its netns).
import type { Workload } from '../../api/gen/nodemesh/workload/v1/workload';
import type { CaptureWorkload } from '../capture/workload';
import { ipFromBytes } from '../state/ip';
import { podUidIn } from './kubelet-cgroups';
import type { SandboxRecord } from './pod-registry';

export interface PodLocalView {
  /** The CNI's record of the pod's current sandbox, if the plugin reported it. */
  readonly sandbox?: SandboxRecord;
  /** The pod's cgroup directory (absolute), if kubelet has made it. */
  readonly cgroupPath?: string;
  /** A netns path of the pod found by discovery (a process in its cgroup), if any. */
  readonly discoveredNetns?: { readonly path: string; readonly inode: number };
  /** Inode of the netns at sandbox.netns, if that path exists. */
  readonly sandboxNetnsInode?: number;
  /** Inode of the node's own netns: a pod in it is host-network and never captured. */
  readonly hostNetnsInode: number;
  /** The kubepods roots searched, for the error message. */
  readonly roots: readonly string[];
}

/** The pod UID the workload API names (Workload.pod_uid; older control planes: a uid ending with it). */
export function publishedPodUid(w: Pick<Workload, 'uid' | 'podUid'>): string | undefined {
  return w.podUid || podUidIn(w.uid);
}

/** The pod UID the workload API names, or the CNI's. */
export function podUidOf(w: Pick<Workload, 'uid' | 'podUid'>, sandbox?: SandboxRecord): string | undefined {
  return publishedPodUid(w) ?? (sandbox?.uid || undefined);
}

/** The sandbox record if it belongs to this incarnation of the pod (same UID when both are known). */
export function currentSandbox(w: Pick<Workload, 'uid' | 'podUid'>, sandbox?: SandboxRecord): SandboxRecord | undefined {
  if (!sandbox) return undefined;
  const wUid = publishedPodUid(w);
  if (wUid && sandbox.uid && wUid !== sandbox.uid) return undefined;
  return sandbox;
}

export function podCaptureWorkload(w: Workload, local: PodLocalView): CaptureWorkload | { problem: string } {
  const key = `${w.namespace}/${w.name}`;
  const sandbox = currentSandbox(w, local.sandbox);
  if (sandbox?.released)
    return { problem: `pod ${key}: its sandbox ${sandbox.containerId.slice(0, 12)} was deleted (CNI DEL); released until a new sandbox is added` };
  const uid = podUidOf(w, sandbox);
  if (!local.cgroupPath) {
    return {
      problem: uid
        ? `pod ${key} (uid ${uid}) has no cgroup under ${local.roots.join(', ')} on this node yet; if kubelet uses another --cgroup-root, start the node proxy with --kubepods-root`
        : `pod ${key}: no CNI event and no running pod under ${local.roots.join(', ')} holds its address, so its cgroup cannot be found`,
    };
  }
  let netns: { path: string; inode: number } | undefined;
  if (sandbox && local.sandboxNetnsInode !== undefined) netns = { path: sandbox.netns, inode: local.sandboxNetnsInode };
  else if (local.discoveredNetns) netns = local.discoveredNetns;
  if (!netns) return { problem: `pod ${key}: no network namespace yet (no CNI ADD seen and no process in ${local.cgroupPath})` };
  if (netns.inode === local.hostNetnsInode) return { problem: `pod ${key} shares the node's network namespace (hostNetwork); it is not captured` };
  // The control plane publishes a Pod before kubelet gives it an IP (which happens after the CNI
  // ADD): until the Workload has addresses, the CNI result's are the pod's.
  const addresses = w.addresses.length ? w.addresses.map(ipFromBytes) : [...(sandbox?.ips ?? [])];
  if (addresses.length === 0) return { problem: `pod ${key} has no address yet (neither the control plane nor the CNI result names one)` };
  return {
    name: w.name,
    namespace: w.namespace,
    netnsPath: netns.path,
    cgroupPath: local.cgroupPath,
    addresses,
    excludedOutboundPorts: [],
    excludedInboundPorts: [],
    excludedCidrs: [],
  };
}
