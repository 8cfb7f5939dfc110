// The capture WorkloadSource over the control plane's workload API: every Workload on this node
// with protocol HBONE (enrolled by nodemesh.io/dataplane-mode=ambient) is captured, using the
// netns and cgroup the Workload carries. A workload that loses the label (or leaves the node)
// drops out of list(), so the next reconcile unenrols it.
import type { Workload } from '../../api/gen/nodemesh/workload/v1/workload';
import type { Logger } from '../../common/log';
import type { CaptureWorkload, WorkloadSource } from '../capture/workload';
import type { WorkloadState } from '../state/workload-state';
import { captureWorkloadOf, keyOf } from './runtime';

/**
 * Where a local workload's netns and cgroup are, when the Workload does not carry them (on
 * Kubernetes the node proxy finds a pod's itself: node-proxy/kubernetes/pods.ts).
 */
export interface WorkloadRuntimeResolver {
  readonly description: string;
  resolve(w: Workload): CaptureWorkload | { problem: string };
  /** Told after each list() how many local workloads could not be resolved. */
  listed?(problems: number): void;
  /** Calls onChange when resolution may give another answer. */
  watch?(onChange: () => void): () => void;
}

export class ControlWorkloadSource implements WorkloadSource {
  readonly description: string;
  /** capture key ("namespace/name") -> workload uid, as of the last list(). */
  private readonly uids = new Map<string, string>();
  private readonly problems = new Map<string, string>();

  constructor(
    private readonly state: WorkloadState,
    private readonly cgroupMount: string,
    control: string,
    private readonly log: Logger,
    private readonly resolver?: WorkloadRuntimeResolver,
  ) {
    this.description = `control plane ${control} (node '${state.node}')${resolver ? `, ${resolver.description}` : ''}`;
  }

  async list(): Promise<CaptureWorkload[]> {
    const out: CaptureWorkload[] = [];
    this.uids.clear();
    const seen = new Set<string>();
    for (const w of this.state.localWorkloads()) {
      seen.add(keyOf(w));
      const c = this.resolver ? this.resolver.resolve(w) : captureWorkloadOf(w, this.cgroupMount);
      const key = keyOf(w);
      if ('problem' in c) {
        if (this.problems.get(key) !== c.problem) this.log.warn({ workload: key }, c.problem);
        this.problems.set(key, c.problem);
        continue;
      }
      this.problems.delete(key);
      this.uids.set(key, w.uid);
      out.push(c);
    }
    for (const key of [...this.problems.keys()]) if (!seen.has(key)) this.problems.delete(key); // left the node or the mesh
    this.resolver?.listed?.(this.problems.size);
    return out;
  }

  watch(onChange: () => void): () => void {
    const off = this.state.onLocalWorkload(() => onChange());
    const offResolver = this.resolver?.watch?.(onChange);
    return () => {
      off();
      offResolver?.();
    };
  }

  /** The current Workload behind a capture key (undefined once it left the node or the mesh). */
  workload(key: string): Workload | undefined {
    const uid = this.uids.get(key);
    return uid === undefined ? undefined : this.state.workload(uid);
  }

  /** Local workloads the control plane lists that cannot be captured, and why. */
  uncapturable(): Array<{ workload: string; problem: string }> {
    return [...this.problems].map(([workload, problem]) => ({ workload, problem }));
  }
}
