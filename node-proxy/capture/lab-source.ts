// Workloads of one lab node, from the lab's state file, filtered and configured by an optional
// capture selection file (selection.ts). Watches both files.
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { labStatePath, readLabTopology } from '../../lab/state';
import { DEFAULT_SELECTION, parseSelection, settingsFor, type CaptureSelection } from './selection';
import type { CaptureWorkload, WorkloadSource } from './workload';

export const LAB_NAMESPACE = 'default';

export class LabWorkloadSource implements WorkloadSource {
  readonly description: string;

  constructor(
    private readonly lab: string,
    private readonly node: string,
    private readonly selectionPath?: string,
  ) {
    this.description = `lab '${lab}' node '${node}'${selectionPath ? ` with capture selection ${selectionPath}` : ''}`;
  }

  private selection(): CaptureSelection {
    if (!this.selectionPath) return DEFAULT_SELECTION;
    let text: string;
    try {
      text = readFileSync(this.selectionPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return DEFAULT_SELECTION;
      throw err;
    }
    return parseSelection(text, this.selectionPath);
  }

  async list(): Promise<CaptureWorkload[]> {
    const topo = readLabTopology(this.lab);
    if (!topo) throw new Error(`lab '${this.lab}' is not up (no state file); run 'nodemesh lab up --lab ${this.lab}' first`);
    const node = topo.nodes.find((n) => n.name === this.node);
    if (!node) throw new Error(`lab '${this.lab}' has no node '${this.node}' (nodes: ${topo.nodes.map((n) => n.name).join(', ')})`);
    const sel = this.selection();
    const out: CaptureWorkload[] = [];
    for (const pod of topo.pods) {
      if (pod.node !== node.name) continue;
      const s = settingsFor(sel, pod.name);
      if (!s) continue;
      out.push({
        name: pod.name,
        namespace: s.namespace ?? LAB_NAMESPACE,
        netnsPath: pod.netnsPath,
        cgroupPath: pod.cgroup,
        addresses: [pod.ip],
        excludedOutboundPorts: s.excludedOutboundPorts ?? [],
        excludedInboundPorts: s.excludedInboundPorts ?? [],
        excludedCidrs: s.excludedCidrs ?? [],
      });
    }
    return out;
  }

  watch(onChange: () => void): () => void {
    const files = [labStatePath(this.lab), ...(this.selectionPath ? [this.selectionPath] : [])];
    const listener = (): void => onChange();
    for (const f of files) watchFile(f, { interval: 250 }, listener);
    return () => {
      for (const f of files) unwatchFile(f, listener);
    };
  }
}
