// What the node proxy needs to know about one workload to capture its traffic, and the small
// interface behind which the source of workloads lives (the lab's state file today, the control
// plane's workload API later).

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

/** The workloads that should be captured on this node. */
export interface WorkloadSource {
  /** Human-readable origin for logs ("lab nmcap state file /run/…"). */
  readonly description: string;
  /** The current set of workloads scheduled on `node` with capture enabled. */
  list(): Promise<CaptureWorkload[]>;
  /** Calls `onChange` whenever the set may have changed; returns a function that stops watching. */
  watch(onChange: () => void): () => void;
}
