// Test harness for capture lab tests: a lab of our own, the node proxy of node1 started and
// stopped by pid, clients run inside pods (their netns AND cgroup, so capture applies to them),
// servers in pod netns served from the test process, and admin reads from the node's netns.
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { cliEntry } from '../../common/paths';
import { labDown } from '../../lab/down';
import { spawnInLab } from '../../lab/spawn';
import { type LabTopology } from '../../lab/state';
import { labUp } from '../../lab/up';
import { connectInNetns, listenInNetns } from '../../native/netns';
import { scaled } from '../support/speed';

export const STATE_ROOT = '/run/nodemesh/node-proxy';

export async function upLab(lab: string): Promise<LabTopology> {
  const { state } = await labUp({ lab, nodes: 2, podsPerNode: 2 });
  return state;
}

export async function downLab(lab: string): Promise<void> {
  await labDown(lab);
  for (const node of ['node1', 'node2']) rmSync(join(STATE_ROOT, `${lab}-${node}`), { recursive: true, force: true });
}

/** A running node proxy (node1) and its collected stderr. */
export interface ProxyProc {
  child: ChildProcess;
  log: () => string;
  exited: Promise<number | null>;
}

export function startProxy(topo: LabTopology, node: string, selectionFile: string, extra: string[] = []): ProxyProc {
  const child = spawnInLab(
    topo,
    node,
    [process.execPath, cliEntry, 'node-proxy', '--node', node, '--lab', topo.lab, '--capture-config', selectionFile, ...extra],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { NODEMESH_LOG_LEVEL: 'info' },
    },
  );
  let text = '';
  child.stdout?.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, log: () => text, exited };
}

export async function stopProxy(p: ProxyProc | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill(signal);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 5000);
  await p.exited;
  clearTimeout(timer);
}

/** Runs the node proxy's teardown for a node (unenrol all, remove pins). */
export function teardown(topo: LabTopology, node: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawnInLab(topo, node, [process.execPath, cliEntry, 'node-proxy', '--node', node, '--lab', topo.lab, '--teardown'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => resolve({ code, out }));
  });
}

export function writeSelection(file: string, selection: unknown): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify(selection));
  renameSync(tmp, file);
}

/** GET over plain HTTP/1.0 to 127.0.0.1:port inside a netns; returns status and body. */
export async function httpGetInNetns(netnsPath: string, port: number, path: string): Promise<{ status: number; body: string }> {
  const s = await connectInNetns(netnsPath, { host: '127.0.0.1', port, timeoutMs: 2000 });
  return new Promise((resolve, reject) => {
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString()));
    s.on('error', reject);
    s.on('end', () => {
      const [head, ...rest] = text.split('\r\n\r\n');
      resolve({ status: Number(head.split(' ')[1]), body: rest.join('\r\n\r\n') });
    });
    s.write(`GET ${path} HTTP/1.0\r\nHost: admin\r\n\r\n`);
  });
}

export async function adminJson<T>(topo: LabTopology, node: string, path: string): Promise<T> {
  const n = topo.nodes.find((x) => x.name === node)!;
  const r = await httpGetInNetns(n.netnsPath, 15000, path);
  if (r.status !== 200) throw new Error(`admin ${path}: HTTP ${r.status} ${r.body}`);
  return JSON.parse(r.body) as T;
}

/** Polls `fn` until it returns a value; `timeoutMs` is the limit on the reference machine (scaled here). */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + scaled(timeoutMs);
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
}

export async function waitReady(topo: LabTopology, node: string, p: ProxyProc): Promise<void> {
  const n = topo.nodes.find((x) => x.name === node)!;
  await waitFor(`node proxy on ${node} to be ready; its log:\n${p.log()}`, async () => {
    if (p.child.exitCode !== null) throw new Error(`node proxy exited with ${p.child.exitCode}: ${p.log()}`);
    const r = await httpGetInNetns(n.netnsPath, 15021, '/healthz/ready');
    return r.status === 200 ? true : undefined;
  });
}

/** One accepted connection as a test server saw it. */
export interface Seen {
  local: string;
  localPort: number;
  remote: string;
  bytes: number;
  sha256: string;
}

/**
 * An echo server inside a pod's netns (served by this process): echoes every byte back with
 * backpressure, half-closes after the client does, and records what it saw per connection.
 */
export async function echoServer(netnsPath: string, port: number): Promise<{ server: Server; seen: Seen[]; sockets: Set<Socket> }> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const fd = listenInNetns(netnsPath, { host: '0.0.0.0', port });
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    const h = createHash('sha256');
    let bytes = 0;
    const rec = { local: (s.localAddress ?? '').replace(/^::ffff:/, ''), localPort: s.localPort ?? 0, remote: (s.remoteAddress ?? '').replace(/^::ffff:/, '') };
    s.on('data', (d: Buffer) => {
      h.update(d);
      bytes += d.length;
    });
    s.on('end', () => seen.push({ ...rec, bytes, sha256: h.digest('hex') }));
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    s.pipe(s);
  });
  await new Promise<void>((resolve) => server.listen({ fd }, resolve));
  return { server, seen, sockets };
}

export function closeServer(x: { server: Server; sockets: Set<Socket> } | undefined): Promise<void> {
  if (!x) return Promise.resolve();
  for (const s of x.sockets) s.destroy();
  return new Promise((r) => x.server.close(() => r()));
}

/** What the in-pod client reports per connection. */
export interface ClientResult {
  ok: boolean;
  error?: string;
  /** getpeername() of the client's socket: 127.0.0.1:15001 when captured */
  peer?: string;
  /** getsockname() of the client's socket (its port is the app connection's source port) */
  local?: string;
  sent?: number;
  sentSha?: string;
  received?: number;
  receivedSha?: string;
  ms?: number;
}

// Runs inside the pod: N concurrent connections, each sends SIZE random bytes, half-closes, reads
// the echo to the end; or with HOLD>0 keeps the connection open HOLD ms after connecting.
const CLIENT = `
const net = require('net'), crypto = require('crypto');
const [host, port, size, count, hold] = process.argv.slice(1).map((x, i) => i === 0 ? x : Number(x));
function one() {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect({ host, port, allowHalfOpen: true });
    const sent = crypto.createHash('sha256'), recv = crypto.createHash('sha256');
    let received = 0, peer, local;
    s.on('connect', () => {
      peer = s.remoteAddress + ':' + s.remotePort;
      local = s.localAddress + ':' + s.localPort;
      if (hold > 0) { process.stdout.write(JSON.stringify({ connected: true, peer }) + '\\n'); setTimeout(() => s.end(), hold); return; }
      const chunk = 64 * 1024; let left = size;
      const pump = () => {
        while (left > 0) {
          const b = crypto.randomBytes(Math.min(chunk, left)); left -= b.length; sent.update(b);
          if (!s.write(b)) return s.once('drain', pump);
        }
        s.end();
      };
      pump();
    });
    s.on('data', (d) => { received += d.length; recv.update(d); });
    s.on('end', () => resolve({ ok: true, peer, local, sent: hold > 0 ? 0 : size, sentSha: sent.digest('hex'), received, receivedSha: recv.digest('hex'), ms: Date.now() - t0 }));
    s.on('error', (e) => resolve({ ok: false, error: e.code || e.message, peer, ms: Date.now() - t0 }));
  });
}
Promise.all(Array.from({ length: count }, one)).then((r) => { process.stdout.write(JSON.stringify(r) + '\\n'); });
`;

export function runClient(topo: LabTopology, pod: string, host: string, port: number, size = 0, count = 1, timeoutMs = 60_000): Promise<ClientResult[]> {
  return new Promise((resolve, reject) => {
    const child = spawnInLab(topo, pod, [process.execPath, '-e', CLIENT, host, String(port), String(size), String(count), '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), scaled(timeoutMs));
    child.once('exit', (code) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as ClientResult[]);
      } catch {
        reject(new Error(`client in ${pod} exited ${code}: ${out} ${err}`));
      }
    });
  });
}

/** A client in `pod` that connects and keeps the connection open for holdMs; resolves once connected. */
export function holdClient(topo: LabTopology, pod: string, host: string, port: number, holdMs: number): Promise<{ peer: string; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const child = spawnInLab(topo, pod, [process.execPath, '-e', CLIENT, host, String(port), '0', '1', String(holdMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const first = out.split('\n')[0];
      if (out.includes('\n')) {
        const msg = JSON.parse(first) as { connected?: boolean; peer: string; ok?: boolean; error?: string };
        if (msg.connected) resolve({ peer: msg.peer, child });
        else reject(new Error(`hold client failed: ${first}`));
      }
    });
    child.once('exit', (code) => reject(new Error(`hold client exited ${code}: ${out}`)));
  });
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
