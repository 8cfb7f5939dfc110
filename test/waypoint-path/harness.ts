// Helpers for the waypoint-path lab tests: HTTP backends listening inside pod netns (served by
// the test process), an HTTP client run inside a pod (so capture sees its connects), the waypoint
// process in its own pod, the sample app (servers and client) in pods, and a control-plane restart.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { cliEntry, projectRoot } from '../../common/paths';
import type { ClientReport } from '../../lab/app/client';
import { spawnInLab } from '../../lab/spawn';
import type { LabTopology } from '../../lab/state';
import { listenInNetns } from '../../native/netns';
import { httpGetInNetns, runClient, waitFor } from '../capture/harness';
import { CONTROL_XDS, type ControlPlaneProc, type Proc } from '../dataplane/mesh-lab';
import { WAYPOINT_ENV, WAYPOINT_NODE_FLAGS } from '../../waypoint/process-flags';
import { scaled } from '../support/speed';

export interface Backend {
  server: Server;
  sockets: Set<Socket>;
  /** Requests served: method and path. */
  requests: Array<{ method: string; path: string }>;
}

/** An HTTP server on 0.0.0.0:port inside a pod's netns; answers every request with `{ version, method, path }`. */
export async function httpBackend(netnsPath: string, port: number, version: string): Promise<Backend> {
  const requests: Backend['requests'] = [];
  const sockets = new Set<Socket>();
  const fd = listenInNetns(netnsPath, { host: '0.0.0.0', port });
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests.push({ method: req.method ?? '', path: req.url ?? '' });
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify({ version, method: req.method, path: req.url });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  // node:http closes a keep-alive connection idle for 5 s; the waypoint reuses its idle upstream
  // connections, and a request sent on one the backend is closing gets 503 UC (as with Envoy). On
  // a slow machine (a TCG guest) the backend's close takes seconds to reach the waypoint through
  // node2's proxy and the HBONE tunnel, so the backend's idle limit scales with the machine like
  // the other limits, keeping the host's ratio between the two.
  server.keepAliveTimeout = scaled(5_000);
  await new Promise<void>((resolve) => server.listen({ fd }, resolve));
  return { server, sockets, requests };
}

export function closeBackend(b: Backend | undefined): Promise<void> {
  if (!b) return Promise.resolve();
  for (const s of b.sockets) s.destroy();
  return new Promise((r) => b.server.close(() => r()));
}

export interface HttpResult {
  status?: number;
  body?: string;
  error?: string;
}

// Runs inside the pod: COUNT requests of METHOD to http://HOST:PORT/PATH, CONCURRENCY at a time,
// each on a new connection (agent: false); prints the results as one JSON line.
const HTTP_CLIENT = `
const http = require('http');
const [host, port, method, path, count, concurrency, timeout] = process.argv.slice(1).map((x, i) => (i === 1 || i >= 4 ? Number(x) : x));
const out = new Array(count);
let next = 0;
function one(i) {
  return new Promise((resolve) => {
    const req = http.request({ host, port, method, path, agent: false, timeout }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => { out[i] = { status: res.statusCode, body }; resolve(); });
      res.on('error', (e) => { out[i] = { error: e.code || e.message }; resolve(); });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => { out[i] = { error: e.code || e.message }; resolve(); });
    req.end();
  });
}
async function worker() { while (next < count) await one(next++); }
Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker)).then(() => process.stdout.write(JSON.stringify(out) + '\\n'));
`;

/** HTTP requests from inside `pod` (captured when the pod is enrolled). */
export function httpFromPod(
  topo: LabTopology,
  pod: string,
  host: string,
  port: number,
  opts: { method?: string; path?: string; count?: number; concurrency?: number; timeoutMs?: number } = {},
): Promise<HttpResult[]> {
  // each request's limit: 10 s on the reference machine, scaled (a TCG guest took longer than a fixed 10 s)
  const { method = 'GET', path = '/', count = 1, concurrency = 1, timeoutMs = scaled(10_000) } = opts;
  return new Promise((resolve, reject) => {
    const child = spawnInLab(
      topo,
      pod,
      [process.execPath, '-e', HTTP_CLIENT, host, String(port), method, path, String(count), String(concurrency), String(timeoutMs)],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs * Math.ceil(count / concurrency) + 10_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as HttpResult[]);
      } catch {
        reject(new Error(`HTTP client in ${pod} exited ${code}: ${out} ${err}`));
      }
    });
  });
}

/** One plain TCP connection from `pod` (no HTTP), for checks at L4 (refused or not). */
export async function tcpFromPod(topo: LabTopology, pod: string, host: string, port: number): Promise<{ ok: boolean; error?: string }> {
  const [r] = await runClient(topo, pod, host, port, 16, 1, 15_000);
  return { ok: !!r?.ok && r.received === 16, error: r?.error };
}

/** `nodemesh waypoint run` in a pod's netns and cgroup, with the node's token. */
export function startWaypoint(topo: LabTopology, cp: ControlPlaneProc, pod: string, name: string, namespace: string, record: string): Proc {
  const p = topo.pods.find((x) => x.name === pod)!;
  const child = spawnInLab(
    topo,
    pod,
    [
      process.execPath,
      ...WAYPOINT_NODE_FLAGS,
      cliEntry,
      'waypoint',
      'run',
      '--name',
      name,
      '-n',
      namespace,
      '--control',
      CONTROL_XDS,
      '--token-file',
      cp.tokenFile(p.node),
      '--trust-bundle',
      cp.rootFile,
      '--ip',
      p.ip,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...WAYPOINT_ENV, NODEMESH_LOG_LEVEL: 'info' }, record },
  );
  let text = '';
  child.stdout?.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, log: () => text, exited };
}

/**
 * Wait until the waypoint answers 200 on 15021 /healthz/ready in its pod's netns (it has its
 * certificate and xDS); fail at once if it exits, and on timeout with its last answer and log.
 */
export async function waitWaypointReady(netnsPath: string, waypoint: Proc, timeoutMs = 30_000): Promise<void> {
  let last = '';
  await waitFor(
    'the waypoint to be ready (certificate and xDS)',
    async () => {
      if (waypoint.child.exitCode !== null) throw new Error(`the waypoint exited with ${waypoint.child.exitCode}: ${waypoint.log()}`);
      const r = await httpGetInNetns(netnsPath, 15021, '/healthz/ready').catch((e: Error) => ({ status: 0, body: e.message }));
      last = r.body;
      return r.status === 200 ? true : undefined;
    },
    timeoutMs,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last answer: ${last}; log:\n${waypoint.log().slice(-4000)}`);
  });
}

/** dist/lab/app/main.js: the sample app, run as a plain script inside pods. */
export const sampleApp = join(projectRoot, 'dist', 'lab', 'app', 'main.js');

/** `lab app <kind> …` (http, h2, grpc) in a pod; resolves once it printed its listening line. */
export async function startSampleApp(topo: LabTopology, pod: string, kind: 'http' | 'h2' | 'grpc', args: string[], record: string): Promise<Proc> {
  const child = spawnInLab(topo, pod, [process.execPath, sampleApp, kind, ...args], { stdio: ['ignore', 'pipe', 'pipe'], record });
  let text = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const listening = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('"listening"')) resolve();
    });
    child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
    void exited.then((code) => reject(new Error(`sample app ${kind} in ${pod} exited ${code}: ${text}`)));
  });
  const timer = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`sample app ${kind} in ${pod} did not listen within 10 s: ${text}`)), 10_000).unref(),
  );
  const proc: Proc = { child, log: () => text, exited };
  try {
    await Promise.race([listening, timer]);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return proc;
}

/** The sample client (`lab app client …`) inside `pod`; resolves with its JSON report. */
export function sampleClient(topo: LabTopology, pod: string, args: string[], limitMs = scaled(120_000)): Promise<ClientReport> {
  return new Promise((resolve, reject) => {
    const child = spawnInLab(topo, pod, [process.execPath, sampleApp, 'client', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as ClientReport);
      } catch {
        reject(new Error(`sample client in ${pod} (${args.join(' ')}) exited ${code}: ${out} ${err}`));
      }
    });
  });
}

/**
 * Kills the control plane (SIGKILL: no goodbye to its clients) and starts it again in the control
 * netns on the same data dir (its store, CA and tokens); resolves once its API is ready again.
 */
export async function restartControlPlane(topo: LabTopology, cp: ControlPlaneProc): Promise<ControlPlaneProc> {
  cp.child.kill('SIGKILL');
  await cp.exited;
  const child = spawnInLab(topo, 'control', [process.execPath, cliEntry, 'control', '--data-dir', cp.dataDir, '--listen', '127.0.0.1:15014'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { NODEMESH_XDS_REQUIRE_NODE_TOKEN: '1' },
    record: 'control',
  });
  let text = '';
  child.stdout?.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const next: ControlPlaneProc = { ...cp, child, log: () => text, exited };
  await waitFor(
    'the restarted control plane’s config API',
    async () => {
      if (child.exitCode !== null) throw new Error(`the restarted control plane exited ${child.exitCode}: ${text}`);
      const r = await httpGetInNetns(topo.control.netnsPath, 15014, '/healthz/ready').catch(() => undefined);
      return r?.status === 200 ? true : undefined;
    },
    30_000,
  );
  return next;
}
