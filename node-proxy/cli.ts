// `nodemesh node-proxy`: the per-node daemon (capture + passthrough for now).
import { parseArgs } from 'node:util';
import { CliError, type Command } from '../cli/command';
import { createLogger } from '../common/log';
import { LabWorkloadSource } from './capture/lab-source';
import { nodeLayout } from './capture/pins';
import { readLabTopology } from '../lab/state';
import { KernelNotReadyError, NodeProxy } from './daemon';

const USAGE = `usage: nodemesh node-proxy --node NAME --lab LAB [options]
  --node NAME             the node this proxy serves (lab: node1, node2, …)
  --lab LAB               take workloads from the lab's state file (the control plane source comes later)
  --capture-config FILE   which lab pods are captured and their exclusions (YAML/JSON, re-read on change):
                            mode: ambient|none
                            workloads: { pod1-2: { mode: none }, pod1-1: { excludedOutboundPorts: [5432] } }
  --admin-port N          admin JSON on 127.0.0.1:N (default 15000)
  --ready-port N          readiness /healthz/ready on N (default 15021)
  --teardown              unenrol every workload of the node, remove its pins and exit
  --log-level LEVEL       pino level (default info, or NODEMESH_LOG_LEVEL)`;

function port(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new CliError(`${flag} must be a port number (0-65535), got '${v}'`, 2);
  return n;
}

export const nodeProxyCommand: Command = {
  name: 'node-proxy',
  summary: 'the per-node daemon: captures enrolled workloads with eBPF and proxies their connections',
  async run(argv) {
    let values: Record<string, string | boolean | undefined>;
    try {
      ({ values } = parseArgs({
        args: argv,
        options: {
          node: { type: 'string' },
          lab: { type: 'string' },
          'capture-config': { type: 'string' },
          'admin-port': { type: 'string' },
          'ready-port': { type: 'string' },
          teardown: { type: 'boolean' },
          'log-level': { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
        strict: true,
      }));
    } catch (e) {
      throw new CliError(`${(e as Error).message}\n${USAGE}`, 2);
    }
    if (values.help) return (process.stdout.write(USAGE + '\n'), 0);
    const node = values.node as string | undefined;
    const lab = values.lab as string | undefined;
    if (!node) throw new CliError(`--node is required\n${USAGE}`, 2);
    if (!lab) throw new CliError('only lab workloads are supported so far: pass --lab LAB (the lab must be up)', 2);
    if (typeof process.getuid === 'function' && process.getuid() !== 0) {
      throw new CliError('the node proxy loads BPF programs and enters network namespaces: run it as root');
    }
    const log = createLogger('node-proxy', (values['log-level'] as string | undefined) ?? process.env.NODEMESH_LOG_LEVEL ?? 'info');
    const topo = readLabTopology(lab);
    if (!topo) throw new CliError(`lab '${lab}' is not up; run 'nodemesh lab up --lab ${lab}' first`);
    const labNode = topo.nodes.find((n) => n.name === node);
    if (!labNode) throw new CliError(`lab '${lab}' has no node '${node}' (nodes: ${topo.nodes.map((n) => n.name).join(', ')})`, 2);
    const layout = nodeLayout(`${lab}-${node}`, labNode.bpffsDir);
    const source = new LabWorkloadSource(lab, node, values['capture-config'] as string | undefined);

    try {
      NodeProxy.checkKernel(log);
    } catch (err) {
      if (err instanceof KernelNotReadyError) throw new CliError(`node proxy cannot start: ${err.message}`);
      throw err;
    }
    const proxy = new NodeProxy({
      node,
      layout,
      source,
      log,
      adminPort: port(values['admin-port'] as string | undefined, '--admin-port'),
      readyPort: port(values['ready-port'] as string | undefined, '--ready-port'),
    });
    if (values.teardown) {
      await proxy.teardown();
      log.info({ pinRoot: layout.pinRoot }, 'node torn down: every workload unenrolled, pins removed');
      return 0;
    }
    await proxy.start();
    log.info({ node, source: source.description, pinRoot: layout.pinRoot, ...proxy.adminPorts }, 'node proxy ready');
    await new Promise<void>((resolve) => {
      const onSignal = (sig: NodeJS.Signals): void => {
        log.info({ signal: sig }, 'stopping; capture stays pinned until --teardown');
        resolve();
      };
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
    });
    await proxy.stop();
    // Spliced connections still open would keep the process alive; they end with it.
    setTimeout(() => process.exit(0), 100).unref();
    return 0;
  },
};
