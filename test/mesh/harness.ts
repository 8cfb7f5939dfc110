// Helpers for the mesh end-to-end tests: the lab comes from the real `nodemesh lab up` (control
// plane, node proxies, demo); clients run inside pods (their netns and cgroup, so capture applies);
// reads of the node proxies' admin, metrics and access logs go into the node netns.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { projectRoot } from '../../common/paths';
import { ApiClient } from '../../control/api/client';
import { labDown } from '../../lab/down';
import { labConnection } from '../../lab/mesh/connect';
import { meshPaths } from '../../lab/mesh/paths';
import { meshDown } from '../../lab/mesh/up';
import { netnsGet } from '../../native/netns-http';
import { runInLab, spawnInLab } from '../../lab/spawn';
import { loadLabState, tryLoadLabState, type LabTopology } from '../../lab/state';
import { cli } from '../lab/support';
import { scaled } from '../support/speed';

export const distFile = (rel: string): string => join(projectRoot, 'dist', rel);

/** Runs `node -e script args…` inside a place of the lab; resolves with exit code and output. */
export function nodeIn(
  topo: LabTopology,
  place: string,
  script: string,
  args: string[] = [],
  timeoutMs = 60_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return runInLab(topo, place, [process.execPath, '-e', script, '--', ...args], scaled(timeoutMs));
}

/** The last JSON line a script printed. */
export function lastJson<T>(r: { code: number; stdout: string; stderr: string }): T {
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`no JSON from the script (exit ${r.code}): ${r.stdout.slice(-500)} ${r.stderr.slice(-1000)}`);
  }
}

/**
 * A TCP client for an echo server: sends `payload` (text, repeated to `bytes`), reads the echo
 * back, prints {ok, sent, received, error}. argv: host port text bytes.
 */
export const ECHO_SCRIPT = `
const net = require('node:net');
const [host, port, text, bytes] = process.argv.slice(1).filter((a) => a !== '--');
const unit = Buffer.from(text);
const payload = Buffer.alloc(Number(bytes));
for (let i = 0; i < payload.length; i += unit.length) unit.copy(payload, i);
const chunks = [];
const s = net.connect({ host, port: Number(port), allowHalfOpen: true });
const timer = setTimeout(() => s.destroy(new Error('timeout')), 20000);
s.on('connect', () => s.end(payload));
s.on('data', (d) => chunks.push(d));
s.on('end', () => s.end());
s.on('error', (e) => { clearTimeout(timer); console.log(JSON.stringify({ ok: false, error: e.code || e.message })); process.exit(0); });
s.on('close', (hadError) => {
  if (hadError) return;
  clearTimeout(timer);
  const got = Buffer.concat(chunks);
  console.log(JSON.stringify({ ok: got.equals(payload), sent: payload.length, received: got.length }));
});
`;

/** Holds one connection open, sending a line every 100 ms; prints "open" once echoed, then {closedAfterMs} when it ends. argv: host port */
export const HOLD_SCRIPT = `
const net = require('node:net');
const [host, port] = process.argv.slice(1).filter((a) => a !== '--');
const s = net.connect({ host, port: Number(port) });
let echoed = 0, opened = 0, t;
s.on('connect', () => { opened = Date.now(); t = setInterval(() => s.write('ping\\n'), 100); });
s.on('data', (d) => { if (echoed === 0) console.log('open'); echoed += d.length; });
const done = (why) => { clearInterval(t); console.log(JSON.stringify({ closed: why, echoed, closedAfterMs: opened ? Date.now() - opened : -1 })); process.exit(0); };
s.on('error', (e) => done(e.code || e.message));
s.on('close', () => done('close'));
setTimeout(() => done('still open after 30 s'), 30000);
`;

/** Asks the certificate service for identities with a node's token, from inside a netns. argv: address rootFile tokenFile ns/sa… */
export const CA_SCRIPT = `
const { readFileSync } = require('node:fs');
const { CaClient } = require(${JSON.stringify(distFile('common/identity/ca-client.js'))});
const { createWorkloadCsr } = require(${JSON.stringify(distFile('common/identity/keys.js'))});
const { identity } = require(${JSON.stringify(distFile('common/identity/spiffe.js'))});
(async () => {
  const [address, rootFile, tokenFile, ...ids] = process.argv.slice(1).filter((a) => a !== '--');
  const client = new CaClient({ address, rootPem: readFileSync(rootFile, 'utf8'), tokenFile });
  const out = [];
  for (const id of ids) {
    const [ns, sa] = id.split('/');
    const csr = await createWorkloadCsr(identity(ns, sa));
    try {
      const r = await client.createCertificate(csr.csrPem, 3600);
      out.push({ id, ok: true, chain: r.certChainPem.length });
    } catch (e) {
      out.push({ id, ok: false, code: e.code, message: e.message });
    }
  }
  client.close();
  console.log(JSON.stringify(out));
})();
`;

export function apiFor(lab: string): ApiClient {
  const c = labConnection(lab);
  return new ApiClient({ server: c.server, token: c.token, createConnection: c.createConnection, ca: c.ca });
}

export async function metricsOf(topo: LabTopology, node: string): Promise<string> {
  const n = topo.nodes.find((x) => x.name === node);
  if (!n) throw new Error(`no node ${node}`);
  const r = await netnsGet(n.netnsPath, '127.0.0.1', 15020, '/metrics');
  if (r.status !== 200) throw new Error(`metrics of ${node}: HTTP ${r.status}`);
  return r.body;
}

/** The value of the first sample of `metric` whose labels include every given label. */
export function sample(text: string, metric: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

/** Spawns a process in a place and collects its stdout; `lines` resolves each time a line matching arrives. */
export function spawnCollect(
  topo: LabTopology,
  place: string,
  argv: string[],
): { child: ChildProcess; out: () => string; waitFor: (re: RegExp, ms: number) => Promise<void>; exited: Promise<void> } {
  const child = spawnInLab(topo, place, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (text += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const waitFor = async (re: RegExp, limitMs: number): Promise<void> => {
    const ms = scaled(limitMs);
    const deadline = Date.now() + ms;
    while (!re.test(text)) {
      if (Date.now() > deadline) throw new Error(`no ${re} within ${ms} ms; output: ${text.slice(-800)}`);
      if (child.exitCode !== null) throw new Error(`exited (${child.exitCode}) before ${re}; output: ${text.slice(-800)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { child, out: () => text, waitFor, exited };
}

/** tcpdump -i any -w FILE inside a netns (by path), started and ready. */
export async function startTcpdump(netnsPath: string, file: string): Promise<{ stop: () => Promise<void> }> {
  const child = spawn('nsenter', [`--net=${netnsPath}`, '--', 'tcpdump', '-i', 'any', '-U', '-s', '0', '-w', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + scaled(10_000);
  while (!/listening on/.test(err)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`tcpdump did not start: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    stop: async () => {
      await new Promise((r) => setTimeout(r, 300)); // let the last packets reach the file
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Keys (namespace/name) of the workloads a node proxy has enrolled, from its admin /workloads. */
export async function enrolledOn(topo: LabTopology, node: string): Promise<string[]> {
  const n = topo.nodes.find((x) => x.name === node);
  if (!n) throw new Error(`no node ${node}`);
  const r = await netnsGet(n.netnsPath, '127.0.0.1', 15000, '/workloads');
  if (r.status !== 200) throw new Error(`admin /workloads of ${node}: HTTP ${r.status}`);
  return (JSON.parse(r.body) as Array<{ key: string }>).map((w) => w.key);
}

/** Polls until `check` is true (bounded); throws naming what it waited for. */
/** `timeoutMs` is the limit on the reference machine (scaled here, test/support/speed). */
export async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const limit = scaled(timeoutMs);
  const deadline = Date.now() + limit;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${limit} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Removes what is left of a lab by force (its mesh, then the lab), e.g. after a failed run. */
export async function cleanLab(lab: string): Promise<void> {
  const old = tryLoadLabState(lab);
  if (old) await meshDown(old, () => undefined).catch(() => undefined);
  await labDown(lab);
}

export interface LabPerFile {
  /** The lab's topology, once `lab up` ran (read in a test or a later beforeAll). */
  readonly topo: LabTopology;
  /** What `nodemesh lab up` returned (a test asserts on it). */
  readonly up: { code: number; stdout: string; stderr: string };
  /** Keep the lab's logs after the file even when every test passes (something worth reading happened). */
  keepLogs(reason: string): void;
}

/**
 * One lab for a test file, registered inside its describe: before the tests, whatever is left of a
 * lab of that name is removed and `nodemesh lab up --lab LAB …upArgs` runs; after a failed test
 * the mesh's logs are kept in /tmp/<keepLogsAs>-<pid> (the lab's own dir goes with lab down); after
 * the tests, `lab down` (or, if that fails, removal by force).
 */
export function labPerFile(lab: string, opts: { upArgs?: string[]; keepLogsAs: string }): LabPerFile {
  let topo: LabTopology | undefined;
  let up: LabPerFile['up'] | undefined;
  let failed = false;
  let keepReason: string | undefined;
  const keepNow = (why: string): void => {
    const logs = meshPaths(lab).logs;
    if (!existsSync(logs)) return;
    const keep = join(tmpdir(), `${opts.keepLogsAs}-${process.pid}`);
    cpSync(logs, keep, { recursive: true, force: true });
    process.stderr.write(`lab logs kept in ${keep} (${why})\n`);
  };
  afterEach((ctx) => {
    if (ctx.task.result?.state !== 'fail') return;
    failed = true;
    // at once: a later test of the file may take the lab down (mesh.lab's last one does), and
    // afterAll would then find no logs (a 6.12 VM run kept none of a failure this way)
    keepNow(`failed: ${ctx.task.name}`);
  });
  beforeAll(async () => {
    await cleanLab(lab);
    up = await cli(['lab', 'up', '--lab', lab, ...(opts.upArgs ?? [])], scaled(150_000));
    topo = loadLabState(lab);
  }, scaled(180_000));
  afterAll(async () => {
    if (failed || keepReason) keepNow(failed ? 'a test failed' : (keepReason ?? ''));
    const down = await cli(['lab', 'down', '--lab', lab], scaled(60_000)).catch(() => undefined);
    if (down?.code !== 0) await cleanLab(lab);
  }, scaled(90_000));
  return {
    get topo(): LabTopology {
      if (!topo) throw new Error(`lab ${lab} is not up`);
      return topo;
    },
    get up(): LabPerFile['up'] {
      if (!up) throw new Error(`lab up --lab ${lab} did not run`);
      return up;
    },
    keepLogs(reason: string): void {
      keepReason ??= reason;
    },
  };
}

// Inside a pod: COUNT requests METHOD PATH to HOST:PORT, each on a new connection; prints {codes}
// (HTTP status, or the error code when there was no answer). argv: host port method path count.
// A request silent for 5 s (× the speed factor nodeIn's scaled() put in the environment) is TIMEOUT.
export const HTTP_SCRIPT = `
const http = require('node:http');
const [host, port, method, path, count] = process.argv.slice(1).filter((a) => a !== '--');
const timeout = 5000 * Math.min(20, Math.max(1, Number(process.env.NODEMESH_SPEED_FACTOR) || 1));
const one = () => new Promise((resolve) => {
  const req = http.request({ host, port: Number(port), method, path, agent: false, timeout }, (res) => {
    res.resume();
    res.on('end', () => resolve(String(res.statusCode)));
    res.on('error', (e) => resolve(e.code || e.message));
  });
  req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
  req.on('error', (e) => resolve(e.code || e.message));
  req.end();
});
(async () => {
  const codes = {};
  for (let i = 0; i < Number(count); i++) { const c = await one(); codes[c] = (codes[c] || 0) + 1; }
  console.log(JSON.stringify({ codes }));
})();
`;
