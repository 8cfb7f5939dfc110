// One node proxy per node, in the node's netns and cgroup (never a pod's: its own sockets must not
// be captured). With the data plane's contract (`--control`, `--token-file`, `--trust-bundle`) it
// takes its workloads from the control plane; a build that only knows `--lab` (capture and
// passthrough, no HBONE) gets a capture selection that enrols the demo namespace instead.
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliEntry } from '../../common/paths';
import { runInLab } from '../spawn';
import { labStateDir, type LabTopology } from '../state';
import type { DemoRole } from './demo';
import { launch, waitReady, type Launched } from './launch';
import { labNodeProxyEnv } from '../time-scale';
import { meshPaths } from './paths';
import { READY_PORT, XDS_TLS_PORT } from '../../common/contracts/ports';
import { NODE_PROXY_ENV, NODE_PROXY_NODE_FLAGS } from '../../node-proxy/process-flags';

export type ProxyFlavour = 'control' | 'lab';

/** Which contract the built node proxy speaks: 'control' when its help mentions --control. */
export function proxyFlavour(): Promise<ProxyFlavour> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cliEntry, 'node-proxy', '--help'], (_err, stdout, stderr) => {
      resolve(/--control\b/.test(stdout + stderr) ? 'control' : 'lab');
    });
  });
}

/** The legacy capture selection: demo pods captured (namespace demo), the rest not. */
export function captureSelection(roles: readonly DemoRole[] | undefined, enrolAll: boolean): string {
  const workloads: Record<string, { mode: 'ambient' | 'none'; namespace?: string }> = {};
  for (const r of roles ?? []) workloads[r.pod.name] = r.namespace === 'demo' ? { mode: 'ambient', namespace: r.namespace } : { mode: 'none' };
  return JSON.stringify({ mode: enrolAll && !roles ? 'ambient' : 'none', workloads }, null, 2) + '\n';
}

/**
 * `--cert-ttl N` when NODEMESH_LAB_CERT_TTL=N (seconds) is set: short-lived workload certificates
 * for the node proxies and waypoints (bench/chaos: certificates expire and are renewed mid-stream).
 */
export function labCertTtl(env: NodeJS.ProcessEnv = process.env): string[] {
  const ttl = env.NODEMESH_LAB_CERT_TTL;
  if (!ttl) return [];
  if (!/^[1-9]\d*$/.test(ttl)) throw new Error(`NODEMESH_LAB_CERT_TTL must be whole seconds, got '${ttl}'`);
  return ['--cert-ttl', ttl];
}

/**
 * The HBONE engine the lab's node proxies start with (node-proxy/proxy/hbone-engine.ts):
 * `<lab state>/mesh/hbone-engine` when written (bench/mesh --engines switches the engine between
 * rounds; the supervisor's restarts read it too), else NODEMESH_HBONE_ENGINE as inherited.
 */
export function labHboneEngine(lab: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  try {
    return readFileSync(join(labStateDir(lab), 'mesh', 'hbone-engine'), 'utf8').trim() || undefined;
  } catch {
    return env.NODEMESH_HBONE_ENGINE;
  }
}

/** Makes the lab's node proxies start with `engine` from their next start. */
export function setLabHboneEngine(lab: string, engine: 'node' | 'native'): void {
  writeFileSync(join(labStateDir(lab), 'mesh', 'hbone-engine'), `${engine}\n`);
}

export interface NodeProxyStarted extends Launched {
  node: string;
  flavour: ProxyFlavour;
}

export function nodeProxyArgv(state: LabTopology, node: string, flavour: ProxyFlavour, xds: string, extra: string[] = []): string[] {
  const paths = meshPaths(state.lab);
  const n = state.nodes.find((x) => x.name === node);
  if (!n) throw new Error(`lab '${state.lab}' has no node '${node}'`);
  const base = [process.execPath, ...NODE_PROXY_NODE_FLAGS, cliEntry, 'node-proxy', '--node', node];
  if (flavour === 'control') {
    return [
      ...base,
      ...labCertTtl(),
      '--control',
      xds,
      '--token-file',
      paths.nodeToken(node),
      '--trust-bundle',
      paths.trustBundle,
      '--bpffs-dir',
      n.bpffsDir,
      ...extra,
    ];
  }
  return [...base, '--lab', state.lab, '--capture-config', join(labStateDir(state.lab), 'mesh', 'capture.json'), ...extra];
}

export const NODE_PROXY_PROCESS = 'node-proxy';

/** Starts the node proxy of `node` in the node's netns (recorded as `node-proxy`); does not wait. */
export function launchNodeProxy(state: LabTopology, node: string, flavour: ProxyFlavour, xds: string): Launched {
  const engine = labHboneEngine(state.lab);
  return launch(state, node, NODE_PROXY_PROCESS, nodeProxyArgv(state, node, flavour, xds), meshPaths(state.lab).log(node, NODE_PROXY_PROCESS), {
    ...NODE_PROXY_ENV,
    ...labNodeProxyEnv(),
    NODEMESH_LOG_LEVEL: process.env.NODEMESH_LOG_LEVEL ?? 'info',
    ...(engine ? { NODEMESH_HBONE_ENGINE: engine } : {}),
  });
}

export async function startNodeProxies(
  state: LabTopology,
  xds: string,
  roles: readonly DemoRole[] | undefined,
  flavour: ProxyFlavour,
): Promise<NodeProxyStarted[]> {
  if (flavour === 'lab') writeFileSync(join(labStateDir(state.lab), 'mesh', 'capture.json'), captureSelection(roles, true));
  const started = state.nodes.map((n) => ({ ...launchNodeProxy(state, n.name, flavour, xds), node: n.name, flavour }));
  await Promise.all(started.map((p) => waitReady(state.nodes.find((n) => n.name === p.node)!.netnsPath, '127.0.0.1', READY_PORT, '/healthz/ready', p, 30_000))); // node found: p.node comes from state.nodes
  return started;
}

/** `node-proxy --teardown` for each node (unenrol, remove pins), bounded in time; errors are returned, not thrown. */
export async function teardownNodeProxies(state: LabTopology, flavour: ProxyFlavour): Promise<string[]> {
  const problems: string[] = [];
  await Promise.all(
    state.nodes.map(async (n) => {
      try {
        const r = await runInLab(state, n.name, nodeProxyArgv(state, n.name, flavour, `${state.control.ip}:${XDS_TLS_PORT}`, ['--teardown']), 20_000);
        if (r.code !== 0) problems.push(`${n.name}: node-proxy --teardown exited ${r.code}: ${r.stderr.trim().split('\n').pop() ?? ''}`);
      } catch (e) {
        problems.push(`${n.name}: ${(e as Error).message}`);
      }
    }),
  );
  return problems;
}
