// The lab's workload source for the node proxy (`nodemesh node-proxy --lab LAB`): the pods of one
// lab node, from the lab's state file, filtered and configured by an optional capture selection
// file (node-proxy/capture/selection.ts). Watches both files. It implements the node proxy's
// WorkloadSource (node-proxy/capture/workload.ts); the dispatcher (cli/main.ts) hands `labNodes`
// to the node proxy's command, so the node proxy itself never imports the lab.
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { CliError } from '../cli/command';
import type { PassthroughNodes } from '../node-proxy/capture/workload';
import { DEFAULT_SELECTION, parseSelection, settingsFor, type CaptureSelection } from '../node-proxy/capture/selection';
import type { CaptureWorkload, WorkloadSource } from '../node-proxy/capture/workload';
import { labStatePath, readLabTopology } from './state';

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

/** `--lab LAB --node NODE`: the node's pin name and bpffs dir in the lab, and its pods as a source. */
export const labNodes: PassthroughNodes = {
  open(lab, node, captureConfig) {
    const topo = readLabTopology(lab);
    if (!topo) throw new CliError(`lab '${lab}' is not up; run 'nodemesh lab up --lab ${lab}' first`);
    const labNode = topo.nodes.find((n) => n.name === node);
    if (!labNode) throw new CliError(`lab '${lab}' has no node '${node}' (nodes: ${topo.nodes.map((n) => n.name).join(', ')})`, 2);
    return { pinName: `${lab}-${node}`, bpffsDir: labNode.bpffsDir, source: new LabWorkloadSource(lab, node, captureConfig) };
  },
};
