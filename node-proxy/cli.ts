// `nodemesh node-proxy`: the per-node daemon. With --control it takes its workloads, policies and
// certificates from the control plane and runs the mesh data path (HBONE, policy, telemetry);
// with --lab it captures lab pods and passes their connections through in plain TCP.
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { CliError, type Command } from '../cli/command';
import { createLogger } from '../common/log';
import type { PassthroughNodes } from './capture/workload';
import { nodeLayout } from './capture/pins';
import { KernelNotReadyError, NodeProxy } from './daemon';
import { DEFAULT_TRUST_DOMAIN } from '../common/identity/spiffe';
import { startControlMode } from './mesh/run';

const USAGE = `usage: nodemesh node-proxy --node NAME --control HOST:PORT --token-file FILE --trust-bundle FILE [options]
       nodemesh node-proxy --node NAME --lab LAB [--capture-config FILE] [options]
  --node NAME             the node this proxy serves (the Workloads' spec.node)
  --control HOST:PORT     the control plane's TLS gRPC port (xDS + certificates), e.g. 10.199.0.254:15012
  --token-file FILE       this node's token ('nodemesh ca issue-node-token --node NAME --out FILE')
  --trust-bundle FILE     the mesh root ('nodemesh ca root'): verifies the control plane and peers
  --trust-domain TD       trust domain of workload identities (default cluster.local)
  --bpffs-dir DIR         where maps and links are pinned (default /sys/fs/bpf/nodemesh/<node>)
  --cert-ttl SECONDS      workload certificate lifetime to ask for (default: the CA's, 24 h)
  --kubernetes            (--control) on a Kubernetes node: find pods' cgroups and netns locally
                            (kubelet's layout, the CNI's netns) and serve the nodemesh CNI plugin
                            (same as --pod-discovery=kubernetes)
  --cgroup-root PATH      the host's cgroup v2 mount when it is not the one in /proc/mounts (a
                            container with the host's cgroupfs mounted at PATH)
  --cni-socket PATH       (--kubernetes) the CNI plugin's socket (default /run/nodemesh/cni.sock)
  --kubepods-root PATH    (--kubernetes) kubelet's pod cgroup root below the cgroup v2 mount, repeatable
                            (default kubepods.slice and kubepods: systemd and cgroupfs drivers)
  --lab LAB               instead of --control: capture the lab's pods in plain TCP passthrough
  --capture-config FILE   (--lab) which pods are captured and their exclusions (YAML/JSON, re-read on change):
                            mode: ambient|none
                            workloads: { pod1-2: { mode: none }, pod1-1: { excludedOutboundPorts: [5432] } }
  --admin-port N          admin JSON on 127.0.0.1:N (default 15000)
  --ready-port N          readiness /healthz/ready on N (default 15021)
  --metrics-port N        Prometheus /metrics on N (default 15020; --control only)
  --teardown              unenrol every workload of the node, remove its pins and exit
  --log-level LEVEL       pino level (default info, or NODEMESH_LOG_LEVEL)`;

function port(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new CliError(`${flag} must be a port number (0-65535), got '${v}'`, 2);
  return n;
}

function untilSignal(log: ReturnType<typeof createLogger>): Promise<void> {
  return new Promise<void>((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      log.info({ signal: sig }, 'stopping; capture stays pinned until --teardown');
      resolve();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
}

/**
 * The command. `passthrough` is what `--lab` captures (the netns lab lends it: lab/node-source.ts,
 * passed in by the dispatcher); without it `--lab` is refused.
 */
export const nodeProxyCommand = (passthrough?: () => Promise<PassthroughNodes>): Command => ({
  name: 'node-proxy',
  summary: 'the per-node daemon: captures enrolled workloads with eBPF and proxies their connections',
  async run(argv) {
    let values: Record<string, string | boolean | string[] | undefined>;
    try {
      ({ values } = parseArgs({
        args: argv,
        options: {
          node: { type: 'string' },
          lab: { type: 'string' },
          control: { type: 'string' },
          'token-file': { type: 'string' },
          'trust-bundle': { type: 'string' },
          'trust-domain': { type: 'string' },
          'bpffs-dir': { type: 'string' },
          'cert-ttl': { type: 'string' },
          'metrics-port': { type: 'string' },
          'capture-config': { type: 'string' },
          'admin-port': { type: 'string' },
          'ready-port': { type: 'string' },
          teardown: { type: 'boolean' },
          kubernetes: { type: 'boolean' },
          'pod-discovery': { type: 'string' },
          'cgroup-root': { type: 'string' },
          'cni-socket': { type: 'string' },
          'kubepods-root': { type: 'string', multiple: true },
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
    const control = values.control as string | undefined;
    if (!node) throw new CliError(`--node is required\n${USAGE}`, 2);
    if (lab && control) throw new CliError('give either --control (workloads from the control plane) or --lab (lab pods in passthrough), not both', 2);
    if (!lab && !control && !values.teardown)
      throw new CliError(`--control HOST:PORT is required (or --lab LAB for passthrough capture of lab pods)\n${USAGE}`, 2);
    if (typeof process.getuid === 'function' && process.getuid() !== 0) {
      throw new CliError('the node proxy loads BPF programs and enters network namespaces: run it as root');
    }
    // written in the background: an access-log line per connection written synchronously was the
    // node proxy's largest cost per new connection (bench/mesh.ts --profile)
    const log = createLogger('node-proxy', (values['log-level'] as string | undefined) ?? process.env.NODEMESH_LOG_LEVEL ?? 'info', undefined, { sync: false });
    const adminPort = port(values['admin-port'] as string | undefined, '--admin-port');
    const readyPort = port(values['ready-port'] as string | undefined, '--ready-port');
    const bpffsDir = values['bpffs-dir'] as string | undefined;
    if (!lab) {
      // Control-plane mode (or a teardown without a lab). The state dir is named after the pin
      // directory, so two labs' "node1" never share enrolment records.
      let layout;
      try {
        layout = bpffsDir ? nodeLayout(basename(bpffsDir).replace(/\+/g, '.'), bpffsDir) : nodeLayout(node);
      } catch (err) {
        throw new CliError((err as Error).message, 2);
      }
      if (values.teardown) {
        const proxy = new NodeProxy({ node, layout, source: { description: 'teardown', list: async () => [], watch: () => () => undefined }, log });
        await proxy.teardown();
        log.info({ pinRoot: layout.pinRoot }, 'node torn down: every workload unenrolled, pins removed');
        return 0;
      }
      const need = (flag: string): string => {
        const v = values[flag];
        if (typeof v !== 'string' || !v) throw new CliError(`--${flag} is required with --control\n${USAGE}`, 2);
        return v;
      };
      const tokenFile = need('token-file');
      const trustBundleFile = need('trust-bundle');
      if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(control as string))
        throw new CliError(`--control must be HOST:PORT (e.g. 10.199.0.254:15012), got '${control}'`, 2);
      const discovery = values['pod-discovery'] as string | undefined;
      if (discovery !== undefined && discovery !== 'kubernetes') throw new CliError(`--pod-discovery must be 'kubernetes', got '${discovery}'`, 2);
      if (discovery === 'kubernetes') values.kubernetes = true;
      const cgroupRoot = values['cgroup-root'] as string | undefined;
      if (cgroupRoot !== undefined && !cgroupRoot.startsWith('/')) throw new CliError(`--cgroup-root must be an absolute path, got '${cgroupRoot}'`, 2);
      const kubepodsRoots = values['kubepods-root'] as string[] | undefined;
      if (!values.kubernetes && (values['cni-socket'] !== undefined || kubepodsRoots !== undefined))
        throw new CliError('--cni-socket and --kubepods-root need --kubernetes', 2);
      const cniSocket = values['cni-socket'] as string | undefined;
      if (cniSocket !== undefined && !cniSocket.startsWith('/')) throw new CliError(`--cni-socket must be an absolute path, got '${cniSocket}'`, 2);
      for (const r of kubepodsRoots ?? [])
        if (r.split('/').includes('..')) throw new CliError(`--kubepods-root must be a path below the cgroup v2 mount, got '${r}'`, 2);
      const ttlText = values['cert-ttl'] as string | undefined;
      const certTtlSeconds = ttlText === undefined ? undefined : Number(ttlText);
      if (certTtlSeconds !== undefined && (!Number.isInteger(certTtlSeconds) || certTtlSeconds < 0))
        throw new CliError(`--cert-ttl must be whole seconds, got '${ttlText}'`, 2);
      try {
        NodeProxy.checkKernel(log);
      } catch (err) {
        if (err instanceof KernelNotReadyError) throw new CliError(`node proxy cannot start: ${err.message}`);
        throw err;
      }
      let running;
      try {
        running = await startControlMode({
          node,
          layout,
          control: control as string,
          tokenFile,
          trustBundleFile,
          trustDomain: (values['trust-domain'] as string | undefined) ?? DEFAULT_TRUST_DOMAIN,
          log,
          adminPort,
          readyPort,
          metricsPort: port(values['metrics-port'] as string | undefined, '--metrics-port'),
          certTtlSeconds,
          kubernetes: values.kubernetes ? { cniSocket, kubepodsRoots } : undefined,
          cgroupMount: cgroupRoot,
        });
      } catch (err) {
        throw new CliError(`node proxy cannot start: ${(err as Error).message}`);
      }
      log.info(
        { node, source: running.source.description, pinRoot: layout.pinRoot, ...running.proxy.adminPorts, metrics: running.metrics.port },
        'node proxy running',
      );
      await untilSignal(log);
      await running.stop();
      setTimeout(() => process.exit(0), 100).unref();
      return 0;
    }
    if (!passthrough) throw new CliError('--lab needs the netns lab (lab/), which this installation does not have; use --control', 2);
    const labNode = (await passthrough()).open(lab, node, values['capture-config'] as string | undefined);
    const layout = nodeLayout(labNode.pinName, bpffsDir ?? labNode.bpffsDir);
    const source = labNode.source;

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
      adminPort,
      readyPort,
    });
    if (values.teardown) {
      await proxy.teardown();
      log.info({ pinRoot: layout.pinRoot }, 'node torn down: every workload unenrolled, pins removed');
      return 0;
    }
    await proxy.start();
    log.info({ node, source: source.description, pinRoot: layout.pinRoot, ...proxy.adminPorts }, 'node proxy ready');
    await untilSignal(log);
    await proxy.stop();
    // Spliced connections still open would keep the process alive; they end with it.
    setTimeout(() => process.exit(0), 100).unref();
    return 0;
  },
});
