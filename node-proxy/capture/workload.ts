// What the node proxy needs to know about one workload to capture its traffic, and the small
// interface behind which the source of workloads lives. Implementations: the control plane's
// workload API joined with the node's enrolment records (node-proxy/mesh), the netns lab's state
// file (lab/node-source.ts, lent by the lab — the node proxy never imports lab/). A new platform
// (e.g. Kubernetes pods on this node) adds a WorkloadSource of its own; nothing else changes.

export interface CaptureWorkload {
  /** Workload name, unique within its namespace. */
  readonly name: string;
  readonly namespace: string;
  /** Path of the workload's network namespace (e.g. /run/netns/nm-…), opened with setns(2). */
  readonly netnsPath: string;
  /** Absolute path of the workload's cgroup v2 directory. */
  readonly cgroupPath: string;
  /** The workload's own IP addresses (v4 and/or v6). */
  readonly addresses: readonly string[];
  /** Destination ports whose outbound connections are not captured (e.g. a database the app reaches directly). */
  readonly excludedOutboundPorts: readonly number[];
  /** Local ports whose inbound connections are not steered to the node proxy. */
  readonly excludedInboundPorts: readonly number[];
  /** Destination CIDRs never captured outbound ("10.0.0.0/8", "fd00::/64"). */
  readonly excludedCidrs: readonly string[];
}

/** `namespace/name`: how the node proxy names a workload in pins, logs and admin output. */
export function workloadKey(w: Pick<CaptureWorkload, 'name' | 'namespace'>): string {
  return `${w.namespace}/${w.name}`;
}

/**
 * The workloads that should be captured on this node. The node proxy calls `list()` at start and
 * after every `onChange`, and reconciles capture against the answer: workloads that appear are
 * enrolled, ones that disappear are unenrolled, changed ones get their map entries rewritten (or are
 * enrolled again when their netns or cgroup was recreated). So:
 * - `list()` returns the whole current set (not a delta), each workload once (by namespace/name);
 *   a rejected promise keeps the previous set (the error is logged, nothing is unenrolled).
 * - `watch()` may call `onChange` spuriously or for several changes at once; the node proxy
 *   coalesces calls. It must not call it after the returned stop function ran.
 * - a listed workload whose netns or cgroup does not exist fails enrolment, reported on the
 *   readiness endpoint; the others are enrolled all the same.
 */
export interface WorkloadSource {
  /** Human-readable origin for logs ("lab 'lab' node 'node1'"). */
  readonly description: string;
  /** The current set of workloads scheduled on this node with capture enabled. */
  list(): Promise<CaptureWorkload[]>;
  /** Calls `onChange` whenever the set may have changed; returns a function that stops watching. */
  watch(onChange: () => void): () => void;
}

/**
 * Nodes whose workloads are captured without a control plane, in plain-TCP passthrough
 * (`nodemesh node-proxy --node NODE --lab NAME`). The netns lab lends one (lab/node-source.ts);
 * the dispatcher passes it to the node proxy's command.
 */
export interface PassthroughNodes {
  /**
   * Node `node` of `name`: the name its pins and records go under, its default bpffs dir and its
   * workloads. Throws an error a user can act on (a CliError) when there is no such node.
   */
  open(name: string, node: string, captureConfig: string | undefined): { pinName: string; bpffsDir: string; source: WorkloadSource };
}
