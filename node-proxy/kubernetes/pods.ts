// The node proxy on a Kubernetes node: resolves where each enrolled pod lives on this node (cgroup
// from its UID, netns from the CNI or from a process in its cgroup) for the control-plane workload
// source, and answers the CNI plugin: an ADD of a pod the mesh captures returns once its capture
// is in place, a DEL once it is released.
import { statSync } from 'node:fs';
import { TunnelProtocol, WorkloadRuntime, type Workload } from '../../api/gen/nodemesh/workload/v1/workload';
import type { Logger } from '../../common/log';
import type { WorkloadStatus } from '../capture/enroller';
import type { CaptureWorkload } from '../capture/workload';
import type { PodEvent, PodEventReply } from '../cni/protocol';
import type { WorkloadRuntimeResolver } from '../mesh/control-source';
import { captureWorkloadOf } from '../mesh/runtime';
import { ipFromBytes } from '../state/ip';
import type { WorkloadState } from '../state/workload-state';
import { currentSandbox, podCaptureWorkload, podUidOf } from './pod-capture';
import { ownNetnsInode, type PodDiscovery } from './pod-discovery';
import type { PodRegistry } from './pod-registry';

/** What the pods side needs of the capture daemon. */
export interface CaptureControl {
  reconcileSoon(): Promise<void>;
  enrolment(key: string): WorkloadStatus | undefined;
  /** Why an enrolled pod cannot carry mesh traffic yet (certificate, HBONE listener), or undefined. */
  notServing?(key: string): string | undefined;
}

export interface KubernetesPodsOptions {
  readonly state: WorkloadState;
  readonly discovery: PodDiscovery;
  readonly registry: PodRegistry;
  readonly log: Logger;
  /** How long an ADD waits for the control plane to know the pod and for its capture (default 25 s). */
  readonly addTimeoutMs?: number;
  /** How often pods that could not be resolved yet are looked for again (default 2 s). */
  readonly retryIntervalMs?: number;
}

const inode = (p: string): number | undefined => {
  try {
    return statSync(p).ino;
  } catch {
    return undefined;
  }
};

export class KubernetesPods implements WorkloadRuntimeResolver {
  private capture?: CaptureControl;
  private readonly hostNetnsInode = ownNetnsInode();
  private unresolved = 0;
  private readonly changeWaiters = new Set<() => void>();
  /** Pods resolved here ("namespace/name" -> the netns/cgroup put on their Workload). */
  private readonly found = new Map<string, { netns: string; cgroup: string }>();

  constructor(private readonly o: KubernetesPodsOptions) {
    o.state.onChange(() => this.wake());
  }

  bind(capture: CaptureControl): void {
    this.capture = capture;
  }

  get description(): string {
    return `Kubernetes pods (kubepods roots ${this.o.discovery.kubepodsRoots.join(', ')} under ${this.o.discovery.cgroupMount})`;
  }

  /** Capture settings for one local enrolled workload (Pods resolved here; others as they come). */
  resolve(w: Workload): CaptureWorkload | { problem: string } {
    const key = `${w.namespace}/${w.name}`;
    // A Workload whose netns/cgroup the control plane gives (a non-pod host) is taken as it is.
    if (w.runtime?.netns && w.runtime.cgroup && !this.found.has(key)) return captureWorkloadOf(w, this.o.discovery.cgroupMount);
    // Addresses this node put on the Workload (from the CNI result) are not the control plane's:
    // resolve as if it had none, so a new sandbox's addresses replace an old one's.
    const local = this.o.state.hasLocalAddresses(w);
    const r = this.find(local ? { ...w, addresses: [] } : w);
    if ('problem' in r) {
      if (this.found.delete(key)) this.o.state.setLocalRuntime(w.namespace, w.name, undefined);
      if (local) this.o.state.setLocalAddresses(w.namespace, w.name, undefined);
    } else {
      // Until the control plane publishes the pod's addresses, the CNI result's stand in for them
      // (inbound HBONE to the pod's IP, same-node routing, source identity by address).
      if (w.addresses.length === 0 || local) this.o.state.setLocalAddresses(w.namespace, w.name, r.addresses);
      const prev = this.found.get(key);
      if (!prev || prev.netns !== r.netnsPath || prev.cgroup !== r.cgroupPath) {
        this.found.set(key, { netns: r.netnsPath, cgroup: r.cgroupPath });
        this.o.state.setLocalRuntime(w.namespace, w.name, WorkloadRuntime.fromPartial({ netns: r.netnsPath, cgroup: r.cgroupPath }));
      }
    }
    return r;
  }

  private find(w: Workload): CaptureWorkload | { problem: string } {
    const sandbox = currentSandbox(w, this.o.registry.get(w.namespace, w.name));
    const uid = podUidOf(w, sandbox);
    let cgroupPath = uid ? this.o.discovery.podCgroup(uid) : undefined;
    const sandboxNetnsInode = sandbox && !sandbox.released ? inode(sandbox.netns) : undefined;
    let found = cgroupPath && sandboxNetnsInode === undefined ? this.o.discovery.podNetns(cgroupPath) : undefined;
    if (!uid && !sandbox) {
      // Neither a CNI event nor the control plane names the pod's UID (it ran before this node
      // proxy): find the running pod whose netns holds the Workload's address.
      const byAddress = this.o.discovery.podByAddress(w.addresses.map(ipFromBytes));
      if (byAddress) {
        cgroupPath = byAddress.pod.cgroupPath;
        found = byAddress.netns;
      }
    }
    if (found) {
      // Keep the path an earlier run enrolled the pod under when it names the same netns, so a
      // restart adopts the pinned capture instead of re-enrolling (which would open a gap).
      const enrolled = this.capture?.enrolment(`${w.namespace}/${w.name}`);
      if (enrolled && enrolled.netnsPath !== found.netnsPath && inode(enrolled.netnsPath) === found.netnsInode)
        found = { ...found, netnsPath: enrolled.netnsPath };
    }
    return podCaptureWorkload(w, {
      sandbox,
      cgroupPath,
      sandboxNetnsInode,
      discoveredNetns: found ? { path: found.netnsPath, inode: found.netnsInode } : undefined,
      hostNetnsInode: this.hostNetnsInode,
      roots: this.o.discovery.kubepodsRoots,
    });
  }

  /** Called by the source after each list(): how many local pods could not be resolved. */
  listed(problems: number): void {
    this.unresolved = problems;
    // Records of pods the control plane no longer has on this node are dropped (only once its
    // state is populated — any workload, not only local ones, so the last pod of a node is dropped
    // too — so a restart never forgets sandboxes before the first push).
    const all = this.o.state.allWorkloads();
    const local = new Set([...all.values()].filter((w) => w.node === this.o.state.node).map((w) => `${w.namespace}/${w.name}`));
    if (all.size > 0) this.o.registry.prune((key) => local.has(key));
    for (const key of [...this.found.keys()]) {
      if (local.has(key)) continue;
      this.found.delete(key);
      const [namespace, name] = key.split('/') as [string, string];
      this.o.state.setLocalRuntime(namespace, name, undefined);
      this.o.state.setLocalAddresses(namespace, name, undefined);
    }
  }

  /** Re-lists while some local pod is unresolved (its cgroup or netns may appear any moment). */
  watch(onChange: () => void): () => void {
    const t = setInterval(() => {
      if (this.unresolved > 0) onChange();
    }, this.o.retryIntervalMs ?? 2000);
    t.unref();
    return () => clearInterval(t);
  }

  private wake(): void {
    for (const w of [...this.changeWaiters]) w();
  }

  /** Resolves on the next state change or after ms, whichever is first. */
  private nextChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.changeWaiters.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.changeWaiters.add(done);
    });
  }

  private podWorkload(ev: Pick<PodEvent, 'namespace' | 'name' | 'uid'>): Workload | undefined {
    for (const w of this.o.state.allWorkloads().values()) {
      if (w.namespace !== ev.namespace || w.name !== ev.name || w.node !== this.o.state.node) continue;
      const wUid = podUidOf(w);
      if (wUid && ev.uid && wUid !== ev.uid) continue; // another incarnation of the name
      return w;
    }
    return undefined;
  }

  /** The CNI plugin's request. */
  async handle(ev: PodEvent): Promise<PodEventReply> {
    const capture = this.capture;
    if (!capture) return { ok: false, retry: true, error: 'the node proxy is starting' };
    const key = `${ev.namespace}/${ev.name}`;
    const log = this.o.log.child({ pod: key, sandbox: ev.containerId.slice(0, 12) });
    switch (ev.kind) {
      case 'ADD':
        return this.add(ev, key, capture, log);
      case 'DEL': {
        const current = this.o.registry.deleted(ev.namespace, ev.name, ev.containerId);
        if (!current) return { ok: true, captured: false, message: `sandbox ${ev.containerId.slice(0, 12)} is not ${key}'s current one; nothing to release` };
        await capture.reconcileSoon();
        const left = capture.enrolment(key);
        if (left && (!ev.netns || left.netnsPath === ev.netns)) return { ok: false, retry: true, error: `pod ${key} is still enrolled after its DEL` };
        // A pod the control plane no longer publishes (deleted through the API) needs no tombstone.
        if (!this.podWorkload(ev)) this.o.registry.prune((k) => k !== key);
        log.info('pod sandbox deleted; capture released');
        return { ok: true, captured: false, message: `pod ${key} released` };
      }
      case 'CHECK': {
        const w = this.podWorkload(ev);
        if (!w || !this.o.state.isLocalEnrolled(w)) return { ok: true, captured: false, message: `pod ${key} is not in the mesh` };
        const e = capture.enrolment(key);
        if (e && e.netnsPath === ev.netns && e.listeners.length > 0) return { ok: true, captured: true, message: `pod ${key} is captured` };
        return { ok: false, retry: false, error: `pod ${key} is in the mesh but not captured on this node` };
      }
    }
  }

  private async add(ev: PodEvent, key: string, capture: CaptureControl, log: Logger): Promise<PodEventReply> {
    this.o.registry.added({ namespace: ev.namespace, name: ev.name, uid: ev.uid, containerId: ev.containerId, netns: ev.netns, ips: ev.ips });
    const deadline = Date.now() + (this.o.addTimeoutMs ?? 25_000);
    let why = `the control plane has not published pod ${key} for node '${this.o.state.node}'`;
    const fail = (): PodEventReply => {
      log.warn({ why }, 'pod sandbox ADD not completed; kubelet will retry');
      return { ok: false, retry: true, error: why };
    };
    // 1. The control plane knows the pod, and the node proxy has captured it (or it is not in the mesh).
    for (;;) {
      const w = this.podWorkload(ev);
      if (w && w.tunnelProtocol !== TunnelProtocol.TUNNEL_PROTOCOL_HBONE) {
        await capture.reconcileSoon(); // a previous sandbox of the pod may still be enrolled
        log.info('pod sandbox added; not in the mesh');
        return { ok: true, captured: false, message: `pod ${key} is not in the mesh (no nodemesh.io/dataplane-mode=ambient)` };
      }
      if (w) {
        await capture.reconcileSoon();
        const e = capture.enrolment(key);
        if (e && e.netnsPath === ev.netns && e.listeners.length > 0) break;
        const r = this.resolve(w);
        why = 'problem' in r ? r.problem : `capture of pod ${key} is not in place yet`;
      }
      const left = deadline - Date.now();
      if (left <= 0) return fail();
      await this.nextChange(Math.min(left, 250));
    }
    // 2. It can carry mesh traffic both ways: its certificate is issued and its HBONE listener open.
    for (;;) {
      const serving = capture.notServing?.(key);
      if (serving === undefined) break;
      why = `pod ${key} is captured but not served yet: ${serving}`;
      if (Date.now() >= deadline) return fail();
      await new Promise((r) => setTimeout(r, 25)); // certificate issuance changes no workload state: poll
    }
    log.info(
      { netnsCookie: capture.enrolment(key)?.netnsCookie },
      'pod sandbox added; captured and served (certificate, HBONE listener) before its containers start',
    );
    return { ok: true, captured: true, message: `pod ${key} captured` };
  }
}
