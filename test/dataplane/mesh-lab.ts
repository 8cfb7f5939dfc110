// Test harness for the data-plane lab tests: the control plane in the lab's control netns (temp
// data dir, node tokens, mesh root), resources applied over its config API through a socket made
// in that netns, and one node proxy per node in --control mode.
import { NODE_PROXY_ENV, NODE_PROXY_NODE_FLAGS } from '../../node-proxy/process-flags';
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { ClientRequestArgs } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliEntry } from '../../common/paths';
import { ApiClient } from '../../control/api/client';
import { labDown } from '../../lab/down';
import { spawnInLab } from '../../lab/spawn';
import { labNodeProxyEnv } from '../../lab/time-scale';
import type { LabTopology } from '../../lab/state';
import { connectInNetns } from '../../native/netns';
import { STATE_BASE } from '../../node-proxy/capture/pins';
import { httpGetInNetns, waitFor } from '../capture/harness';
import { speedFactor } from '../support/speed';

export const CONTROL_XDS = '10.199.0.254:15012';

export interface Proc {
  child: ChildProcess;
  log: () => string;
  exited: Promise<number | null>;
}

function spawnLogged(topo: LabTopology, place: string, argv: string[], record: string, env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawnInLab(topo, place, argv, { stdio: ['ignore', 'pipe', 'pipe'], env, record });
  let text = '';
  child.stdout?.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, log: () => text, exited };
}

export async function stopProc(p: Proc | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill(signal);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 5000);
  await p.exited;
  clearTimeout(timer);
}

export interface ControlPlaneProc extends Proc {
  dataDir: string;
  api: ApiClient;
  rootFile: string;
  tokenFile(node: string): string;
  cleanup(): void;
}

/** `nodemesh control` in the lab's control netns with a temp data dir; node tokens and the root written next to it. */
export async function startControlPlane(topo: LabTopology, nodes: readonly string[]): Promise<ControlPlaneProc> {
  const dataDir = mkdtempSync(join(tmpdir(), 'nm-dp-control-'));
  const cli = (...args: string[]): string => execFileSync(process.execPath, [cliEntry, ...args, '--data-dir', dataDir], { encoding: 'utf8' });
  const rootFile = join(dataDir, 'mesh-root.pem');
  const proc = spawnLogged(topo, 'control', [process.execPath, cliEntry, 'control', '--data-dir', dataDir, '--listen', '127.0.0.1:15014'], 'control', {
    NODEMESH_XDS_REQUIRE_NODE_TOKEN: '1',
  });
  const netns = topo.control.netnsPath;
  const createConnection = ((opts: ClientRequestArgs, oncreate: (err: Error | null, socket?: unknown) => void) => {
    connectInNetns(netns, { host: String(opts.host ?? topo.control.ip), port: Number(opts.port ?? 15014), timeoutMs: 3000 }).then(
      (s) => oncreate(null, s),
      (e: Error) => oncreate(e),
    );
    return undefined;
  }) as unknown as ClientRequestArgs['createConnection']; // async connector form of Node's createConnection
  await waitFor(
    `the control plane's config API; its log:\n${proc.log()}`,
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`control plane exited: ${proc.log()}`);
      try {
        readFileSync(join(dataDir, 'token'));
      } catch {
        return undefined;
      }
      const r = await httpGetInNetns(netns, 15014, '/healthz/ready').catch(() => undefined);
      return r?.status === 200 ? true : undefined;
    },
    30_000,
  );
  for (const n of nodes) cli('ca', 'issue-node-token', '--node', n, '--out', join(dataDir, `${n}.token`));
  // The API token exists once the control plane started; the root once its CA opened.
  const token = readFileSync(join(dataDir, 'token'), 'utf8').trim();
  execFileSync('sh', ['-c', `"$0" "$1" ca root --data-dir "$2" > "$3"`, process.execPath, cliEntry, dataDir, rootFile]);
  // loopback inside the control netns: plain HTTP (a non-loopback --listen would be HTTPS)
  const api = new ApiClient({ server: 'http://127.0.0.1:15014', token, createConnection });
  return {
    ...proc,
    dataDir,
    api,
    rootFile,
    tokenFile: (n) => join(dataDir, `${n}.token`),
    cleanup: () => rmSync(dataDir, { recursive: true, force: true }),
  };
}

/** A node proxy in --control mode in the node's netns and cgroup. */
export function startMeshProxy(topo: LabTopology, cp: ControlPlaneProc, node: string, extra: string[] = []): Proc {
  const n = topo.nodes.find((x) => x.name === node)!;
  return spawnLogged(
    topo,
    node,
    [
      process.execPath,
      ...NODE_PROXY_NODE_FLAGS, // as the lab and the DaemonSet start it
      cliEntry,
      'node-proxy',
      '--node',
      node,
      '--control',
      CONTROL_XDS,
      '--token-file',
      cp.tokenFile(node),
      '--trust-bundle',
      cp.rootFile,
      '--bpffs-dir',
      n.bpffsDir,
      ...extra,
    ],
    `node-proxy-${node}`,
    { ...NODE_PROXY_ENV, ...labNodeProxyEnv({ ...process.env, NODEMESH_SPEED_FACTOR: String(speedFactor()) }), NODEMESH_LOG_LEVEL: 'info' },
  );
}

export function teardownArgs(topo: LabTopology, node: string): string[] {
  const n = topo.nodes.find((x) => x.name === node)!;
  return [process.execPath, cliEntry, 'node-proxy', '--node', node, '--bpffs-dir', n.bpffsDir, '--teardown'];
}

/** With `dir` set (the tests' NM*_LOG_DIR), write each started process's log there as `<name>.log`. */
export function keepLogs(dir: string | undefined, procs: Record<string, Proc | undefined>): void {
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  for (const [name, p] of Object.entries(procs)) if (p) writeFileSync(join(dir, `${name}.log`), p.log());
}

/**
 * The end of a mesh lab test, once its node proxies have stopped: each node's capture torn down
 * (`node-proxy --teardown`), the control plane stopped and its data directory removed, the lab
 * down, and the node proxies' enrolment records (emptied by the teardown) removed.
 */
export async function tearDownMeshLab(lab: string, topo: LabTopology | undefined, nodes: readonly string[], cp: ControlPlaneProc | undefined): Promise<void> {
  if (topo) {
    for (const n of nodes) {
      await new Promise<void>((resolve) => {
        const c = spawnInLab(topo, n, teardownArgs(topo, n), { stdio: 'ignore' });
        c.once('exit', () => resolve());
        c.once('error', () => resolve());
      });
    }
  }
  await stopProc(cp);
  cp?.cleanup();
  await labDown(lab);
  for (const n of nodes) rmSync(join(STATE_BASE, `${lab}-${n}`), { recursive: true, force: true });
}

export async function waitMeshReady(topo: LabTopology, node: string, p: Proc, timeoutMs = 30_000): Promise<void> {
  const n = topo.nodes.find((x) => x.name === node)!;
  let last = '';
  await waitFor(
    `node proxy on ${node} to be ready`,
    async () => {
      if (p.child.exitCode !== null) throw new Error(`node proxy on ${node} exited with ${p.child.exitCode}: ${p.log()}`);
      const r = await httpGetInNetns(n.netnsPath, 15021, '/healthz/ready');
      last = r.body;
      return r.status === 200 ? true : undefined;
    },
    timeoutMs,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last answer: ${last}; log:\n${p.log().slice(-4000)}`);
  });
}

/** The Prometheus text of a node proxy's /metrics (15020, from inside the node's netns). */
export async function metricsText(topo: LabTopology, node: string): Promise<string> {
  const n = topo.nodes.find((x) => x.name === node)!;
  const r = await httpGetInNetns(n.netnsPath, 15020, '/metrics');
  if (r.status !== 200) throw new Error(`metrics on ${node}: HTTP ${r.status}`);
  return r.body;
}

/** Sum of a metric's samples whose labels include every given label. */
export function metricSum(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    const body = line.slice(name.length + 1, close);
    if (Object.entries(labels).every(([k, v]) => body.includes(`${k}="${v}"`))) sum += Number(line.slice(close + 1).trim());
  }
  return sum;
}
