// Benchmark (not a test): what the mesh costs, against the same pods without it and against
// stunnel set up as the same two-hop mutual-TLS tunnel, cross-node and same-node, in one run.
//
//   node dist/bench/mesh.js [--seconds 3] [--rate 500] [--latency-seconds 4] [--connections 16]
//
// A lab of its own ('nmbmesh', removed at the end), built like `nodemesh lab up` (control plane,
// node proxies, the demo). Source pod: the frontend (pod1-1). Destinations: the backend's pod on
// node2 (cross-node) and the tcp-echo pod on node1 (same node), each running iperf3 -s and a TCP
// echo. Per path and mode:
//   bulk     iperf3 -t SECONDS, one stream, received Gbit/s
//   latency  64 B request/response on CONNECTIONS persistent connections at a fixed RATE (sends
//            are scheduled on a 1 ms timer; latency counts from the write of the request, since
//            the timer's own lateness would otherwise dominate sub-millisecond figures), p50/p99
//   proxy    both node proxies' CPU seconds (/proc/PID/stat utime+stime) per 1,000 requests of the
//            latency run, and their RSS after it
// Modes: mesh (namespace demo enrolled: HBONE between nodes), direct (namespace relabelled
// dataplane-mode=none: plain TCP), stunnel (not enrolled; stunnel client in the source pod,
// stunnel server in the destination pod, TLS 1.3 with client certificates from a throwaway CA).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ApiClient } from '../control/api/client';
import { labDown } from '../lab/down';
import { labConnection } from '../lab/mesh/connect';
import type { DemoRole } from '../lab/mesh/demo';
import { launch } from '../lab/mesh/launch';
import { netnsGet } from '../lab/mesh/netns-http';
import { meshDown, meshUp } from '../lab/mesh/up';
import { appMain } from '../lab/mesh/traffic';
import { runInLab } from '../lab/spawn';
import { readLabProcesses, tryLoadLabState, type LabTopology } from '../lab/state';
import { formatTable } from '../lab/table';
import { labUp } from '../lab/up';
import { sleep } from '../lab/sys';

const LAB = 'nmbmesh';
const IPERF_PORT = 5201;
const ECHO_PORT = 7000;

const LOADGEN = `
const net = require('node:net');
const [host, port, rate, ms, conns, size] = process.argv.slice(1).filter((a) => a !== '--').map((v, i) => (i === 0 ? v : Number(v)));
const payload = Buffer.alloc(size, 120);
const lat = [];
let errors = 0, sent = 0;
const total = Math.round((rate * ms) / 1000);
const states = [];
const next = (st) => {
  if (st.busy || st.queue.length === 0) return;
  st.queue.shift(); st.start = performance.now(); st.busy = true; st.s.write(payload);
};
let connected = 0;
for (let i = 0; i < conns; i++) {
  const st = { s: net.connect({ host, port }), busy: false, queue: [], got: 0, start: 0 };
  st.s.setNoDelay(true);
  st.s.on('connect', () => { if (++connected === conns) go(); });
  st.s.on('data', (d) => {
    st.got += d.length;
    while (st.got >= size && st.busy) { st.got -= size; lat.push(performance.now() - st.start); st.busy = false; next(st); }
  });
  st.s.on('error', () => { errors++; });
  states.push(st);
}
function go() {
  const t0 = performance.now();
  const tick = setInterval(() => {
    const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000));
    while (sent < due) { const st = states[sent % conns]; st.queue.push(t0 + (sent * 1000) / rate); sent++; next(st); }
    if (sent >= total) { clearInterval(tick); finish(t0); }
  }, 1);
}
function finish(t0) {
  const deadline = performance.now() + 5000;
  const wait = setInterval(() => {
    if (lat.length + errors >= total || performance.now() > deadline) {
      clearInterval(wait);
      lat.sort((a, b) => a - b);
      const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : -1);
      console.log(JSON.stringify({ requests: total, done: lat.length, errors, p50: q(0.5), p99: q(0.99), max: lat[lat.length - 1] ?? -1, seconds: (performance.now() - t0) / 1000 }));
      for (const st of states) st.s.destroy();
      process.exit(0);
    }
  }, 20);
}
setTimeout(() => { console.log(JSON.stringify({ requests: total, done: lat.length, errors: errors + 1, p50: -1, p99: -1 })); process.exit(1); }, ms + 20000);
`;

interface Latency {
  requests: number;
  done: number;
  errors: number;
  p50: number;
  p99: number;
}

const say = (m: string): void => void process.stderr.write(`[bench mesh] ${m}\n`);

function lastJson<T>(text: string): T {
  return JSON.parse(text.trim().split('\n').pop() ?? '{}') as T;
}

async function iperf(topo: LabTopology, from: string, host: string, port: number, seconds: number): Promise<number> {
  const r = await runInLab(topo, from, ['iperf3', '-c', host, '-p', String(port), '-t', String(seconds), '-J'], (seconds + 20) * 1000);
  try {
    const j = JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
    if (j.error) throw new Error(j.error);
    return (j.end?.sum_received?.bits_per_second ?? 0) / 1e9;
  } catch (e) {
    throw new Error(`iperf3 from ${from} to ${host}:${port} failed: ${(e as Error).message} ${r.stderr.slice(-300)}`);
  }
}

async function latency(topo: LabTopology, from: string, host: string, port: number, o: { rate: number; ms: number; conns: number }): Promise<Latency> {
  const r = await runInLab(topo, from, [process.execPath, '-e', LOADGEN, '--', host, String(port), String(o.rate), String(o.ms), String(o.conns), '64'], o.ms + 40_000);
  return lastJson<Latency>(r.stdout);
}

interface ProcUse {
  cpu: number;
  rssMiB: number;
}

function procUse(pid: number): ProcUse {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return { cpu: ticks / 100, rssMiB: Number(rss ?? 0) / 1024 }; // USER_HZ is 100 on Linux
}

function proxyPids(lab: string): number[] {
  return readLabProcesses(lab)
    .filter((p) => p.name === 'node-proxy')
    .map((p) => p.pid);
}

async function enrolled(topo: LabTopology, node: string): Promise<string[]> {
  const n = topo.nodes.find((x) => x.name === node)!; // node names come from the topology
  const r = await netnsGet(n.netnsPath, '127.0.0.1', 15000, '/workloads');
  return (JSON.parse(r.body) as Array<{ key: string }>).map((w) => w.key);
}

/** A throwaway CA and one certificate for each stunnel end (ECDSA P-256). */
function makeCerts(dir: string): void {
  const ossl = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=nm-bench-ca']);
  for (const who of ['server', 'client']) {
    ossl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=nm-bench-${who}`]);
    ossl(['x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.pem`, '-days', '1']);
  }
}

function stunnelConf(dir: string, side: 'client' | 'server', services: Array<{ name: string; accept: string; connect: string }>): string {
  const lines = ['foreground = yes', 'pid =', 'debug = 3', `output = ${join(dir, `stunnel-${side}.log`)}`];
  for (const s of services) {
    lines.push(
      `[${s.name}]`,
      ...(side === 'client' ? ['client = yes'] : []),
      `accept = ${s.accept}`,
      `connect = ${s.connect}`,
      `cert = ${join(dir, `${side}.pem`)}`,
      `key = ${join(dir, `${side}.key`)}`,
      `CAfile = ${join(dir, 'ca.pem')}`,
      'verifyChain = yes',
      'requireCert = yes',
      'sslVersionMin = TLSv1.3',
    );
  }
  return lines.join('\n') + '\n';
}

interface Row {
  path: string;
  mode: string;
  gbps: number;
  lat: Latency;
  cpuPer1k?: number;
  rssMiB?: number;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { seconds: { type: 'string' }, rate: { type: 'string' }, 'latency-seconds': { type: 'string' }, connections: { type: 'string' } },
  });
  const seconds = Number(values.seconds ?? 3);
  const lo = { rate: Number(values.rate ?? 500), ms: Number(values['latency-seconds'] ?? 4) * 1000, conns: Number(values.connections ?? 16) };
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    say('skipped: needs root (it builds a netns lab)');
    return 0;
  }
  const tmp = mkdtempSync(join(tmpdir(), 'nm-bench-mesh-'));
  const cleanup = async (): Promise<void> => {
    const s = tryLoadLabState(LAB);
    if (s) await meshDown(s, () => undefined).catch(() => undefined);
    await labDown(LAB).catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  { const s = tryLoadLabState(LAB); if (s) await meshDown(s, () => undefined).catch(() => undefined); await labDown(LAB).catch(() => undefined); }
  const rows: Row[] = [];
  try {
    const { state: topo } = await labUp({ lab: LAB, nodes: 2, podsPerNode: 2 });
    const m = await meshUp(topo, { mesh: true, demo: true, drive: { connections: 1, concurrency: 1, size: 0, timeoutMs: 5000 } }, say);
    const roles = m.roles as DemoRole[];
    const src = roles.find((r) => r.role === 'frontend') as DemoRole;
    const dsts: Array<[string, DemoRole]> = [
      ['cross-node', roles.find((r) => r.role === 'backend') as DemoRole],
      ['same-node', roles.find((r) => r.role === 'tcp-echo') as DemoRole],
    ];
    const logs = join(tmp, 'logs');
    for (const [, d] of dsts) {
      launch(topo, d.pod.name, 'bench-iperf3', ['iperf3', '-s', '-p', String(IPERF_PORT)], join(logs, `${d.pod.name}-iperf3.log`));
      launch(topo, d.pod.name, 'bench-echo', [process.execPath, appMain(), 'echo', '--port', String(ECHO_PORT)], join(logs, `${d.pod.name}-echo.log`));
    }
    await sleep(1000);

    const measure = async (mode: string, target: (d: DemoRole, port: number, i: number) => [string, number], withProxy: boolean): Promise<void> => {
      for (const [i, [path, d]] of dsts.entries()) {
        say(`${mode} ${path}: iperf3 ${seconds} s`);
        const [ih, ip] = target(d, IPERF_PORT, i);
        const gbps = await iperf(topo, src.pod.name, ih, ip, seconds);
        say(`${mode} ${path}: ${lo.rate} req/s for ${lo.ms / 1000} s on ${lo.conns} connections`);
        const pids = proxyPids(LAB);
        const before = withProxy ? pids.map(procUse) : [];
        const [lh, lp] = target(d, ECHO_PORT, i);
        const lat = await latency(topo, src.pod.name, lh, lp, lo);
        const after = withProxy ? pids.map(procUse) : [];
        const cpu = after.reduce((a, u, k) => a + (u.cpu - (before[k]?.cpu ?? 0)), 0);
        rows.push({
          path,
          mode,
          gbps,
          lat,
          cpuPer1k: withProxy && lat.done ? (cpu * 1000) / lat.done : undefined,
          rssMiB: withProxy ? after.reduce((a, u) => a + u.rssMiB, 0) : undefined,
        });
      }
    };

    await measure('mesh (HBONE)', (d, port) => [d.pod.ip, port], true);

    say('unenrolling namespace demo (dataplane-mode=none) for the direct and stunnel runs');
    const c = labConnection(LAB);
    const api = new ApiClient({ server: c.server, token: c.token, createConnection: c.createConnection });
    await api.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo', labels: { 'nodemesh.io/dataplane-mode': 'none' } } }]);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const left = [...(await enrolled(topo, 'node1')), ...(await enrolled(topo, 'node2'))].filter((k) => k.startsWith('demo/'));
      if (left.length === 0) break;
      if (Date.now() > deadline) throw new Error(`workloads still enrolled after 20 s: ${left.join(', ')}`);
      await sleep(200);
    }
    await measure('direct (no mesh)', (d, port) => [d.pod.ip, port], false);

    makeCerts(tmp);
    const servers = dsts.map(([, d]) => [
      { name: 'iperf', accept: `0.0.0.0:${IPERF_PORT + 10_000}`, connect: `127.0.0.1:${IPERF_PORT}` },
      { name: 'echo', accept: `0.0.0.0:${ECHO_PORT + 10_000}`, connect: `127.0.0.1:${ECHO_PORT}` },
    ].map((s) => ({ ...s, pod: d.pod.name })));
    for (const [i, [, d]] of dsts.entries()) {
      const conf = join(tmp, `server-${i}.conf`);
      writeFileSync(conf, stunnelConf(tmp, 'server', servers[i] ?? []));
      launch(topo, d.pod.name, 'bench-stunnel-server', ['stunnel4', conf], join(logs, `${d.pod.name}-stunnel.log`));
    }
    const clientServices = dsts.flatMap(([, d], i) => [
      { name: `iperf${i}`, accept: `127.0.0.1:${20_000 + i * 10 + 1}`, connect: `${d.pod.ip}:${IPERF_PORT + 10_000}` },
      { name: `echo${i}`, accept: `127.0.0.1:${20_000 + i * 10 + 2}`, connect: `${d.pod.ip}:${ECHO_PORT + 10_000}` },
    ]);
    const cconf = join(tmp, 'client.conf');
    writeFileSync(cconf, stunnelConf(tmp, 'client', clientServices));
    launch(topo, src.pod.name, 'bench-stunnel-client', ['stunnel4', cconf], join(logs, `${src.pod.name}-stunnel.log`));
    await sleep(1000);
    await measure('stunnel (mTLS)', (_d, port, i) => ['127.0.0.1', 20_000 + i * 10 + (port === IPERF_PORT ? 1 : 2)], false);
  } finally {
    await cleanup();
  }
  const table = formatTable(
    ['PATH', 'MODE', 'BULK Gbit/s', `p50 ms @${lo.rate}/s`, 'p99 ms', 'ERRORS', 'PROXY CPU s/1k req', 'PROXY RSS MiB (2 nodes)'],
    rows.map((r) => [
      r.path,
      r.mode,
      r.gbps.toFixed(2),
      r.lat.p50.toFixed(2),
      r.lat.p99.toFixed(2),
      `${r.lat.errors + r.lat.requests - r.lat.done}`,
      r.cpuPer1k !== undefined ? r.cpuPer1k.toFixed(3) : '-',
      r.rssMiB !== undefined ? r.rssMiB.toFixed(0) : '-',
    ]),
  );
  process.stdout.write(`\nmesh benchmark: pod1-1 (frontend) -> backend pod on node2 / tcp-echo pod on node1; iperf3 ${seconds} s; 64 B req/resp at ${lo.rate}/s on ${lo.conns} connections for ${lo.ms / 1000} s\n${table}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench mesh: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
