// Benchmark (not a test): what the mesh costs, against the same pods without it and against
// stunnel set up as the same two-hop mutual-TLS tunnel, cross-node and same-node, in one run.
//
//   npm run bench -- mesh [--lab nmbench] [--seconds 3] [--streams 8] [--rates 500,1000] [--latency-seconds 10]
//                         [--connections 16] [--conn-seconds 3] [--conn-concurrency 100] [--conn-size 16384]
//                         [--rounds 3] [--modes mesh,direct,stunnel] [--engines node,native] [--measure bulk,latency,conn] [--profile DIR]
//                         [--pods 3] [--soak MINUTES [--soak-rate 1000]]
//   npm run bench -- mesh --measure memory --pods 100     (only the idle memory of the node proxies)
//
// A lab of its own (default 'nmbench', removed at the end, also on failure or Ctrl-C) of the default
// shape (2 nodes x 3 pods) with the mesh but without the demo (`lab up --no-demo`): every pod is a
// Workload in namespace `default`, no Service, no waypoint and no policy in the way. The demo's
// backend is behind a waypoint that admits only the waypoint's identity, so it cannot be dialled
// pod to pod; these pods can. Source: pod1-1. Destinations, each running iperf3 -s and a TCP echo:
// pod2-1 (cross-node) and pod1-2 (same node), dialled by pod address. Per path and mode:
//   bulk     iperf3 -t SECONDS, one stream and STREAMS parallel streams (-P), received Gbit/s
//   latency  64 B request/response on CONNECTIONS persistent connections at each fixed rate of
//            RATES, p50/p99 (bench/support/loadgen.ts)
//   conn/s   new connections per second, CONN_CONCURRENCY at a time, each a CONN_SIZE echo
//            (bench/support/conngen.ts): through capture (mesh) against not enrolled (direct)
//   CPU      the tunnel's processes' CPU seconds (/proc/PID/stat utime+stime: every thread, also
//            those that ended) per 1,000 requests answered in the latency run at the last rate, from
//            just before the load generator starts to just after it ends: BOTH node proxies summed
//            for the mesh (a same-node row's sum includes node2's idle proxy), the stunnel client and
//            the destination's stunnel server summed for stunnel. A second table gives each process
//            on its own, and for the node proxies each group of threads (the HBONE engine's, the
//            splice thread, the JavaScript main thread, the rest): CPU and wake-ups (voluntary context
//            switches, /proc/PID/task/*/status) per request. Also the node proxies' CPU milliseconds
//            per new connection of the conn/s run, and their RSS after the latency run
//   carried  what the destination node proxy's access log says about the row's connections: through
//            the mesh every one must be logged with the expected protocol (HBONE across nodes, the
//            same-node path on one node) and the source's SPIFFE ID; without it none may be
// Modes: mesh (namespace default labelled dataplane-mode=ambient), direct (relabelled none: plain
// TCP), stunnel (not enrolled; stunnel client in the source pod, server in the destination pod,
// TLS 1.3 with client certificates from a throwaway CA). Exit 1 when a row was not carried as claimed.
// Engines (--engines, default native, as the node proxy's): the HBONE engine(s) the mesh mode runs with (docs/hbone.md, "The
// native engine"); with node,native the mesh is measured with each as a mode of its own, interleaved
// with the others in every round — the node proxies are restarted with the other engine between them
// (lab/mesh/proxies.ts setLabHboneEngine; the lab's supervisor starts them again) and each proxy's
// /stats must name the engine before the row is measured.
// Rounds (--rounds, default 3): on a shared machine one pass per mode says more about the
// neighbours than about the mesh, so the modes are interleaved — every round measures each mode
// once, in a rotated order (mesh, direct, stunnel; then direct, stunnel, mesh; …), relabelling the
// namespace when the mode needs it — and each figure is the median over the rounds with its
// spread (min–max). A second table gives the mesh's ratios to direct and to stunnel (of the
// medians, with the spread of the per-round ratios: rounds are close in time, so a per-round ratio
// shares its noise), and the latency it adds over direct next to what stunnel adds. The load
// average at start and end is printed with the figures. iperf3, stunnel4 and openssl are installed
// with apt-get when missing.
// Memory: after enrolling every pod (--pods per node, up to the lab's 100), once the proxies have
// settled (at least 25 s, then until each RSS holds still for 4 s, at most 90 s: the proxy's idle
// collection and V8's memory reducer have run) and before any load, each node proxy's resident memory split into V8 heap,
// external (Buffers, TLS/HTTP/2 state reported to V8) and the rest (code, other native memory,
// thread stacks), with its threads and open fds; and the same RSS split by /proc/PID/smaps_rollup
// into file-backed (the node binary's pages, shared with every Node process) and anonymous (the
// process's own). `--measure memory` alone measures
// only this (no rounds) and exits 1 unless every node proxy has every one of its pods enrolled;
// with other measures, the same table is read again after the rounds (and after the soak), settled
// and no sooner than 80 s after the load (the HBONE pool's idle timeout and the idle collection after it).
// --soak MINUTES: instead of the rounds, SOAK_RATE req/s (64 B request/response on CONNECTIONS
// connections) cross-node through the mesh for MINUTES, both proxies' RSS, open fds and threads
// sampled every 10 s; flat means every sample after the warm-up (a fifth of the run, at most 60 s)
// within ±5 % of the median. Exit 1 when a request failed or RSS or fds are not flat.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../control/api/client';
import { labDown } from '../lab/down';
import { labConnection } from '../lab/mesh/connect';
import { spiffeId } from '../lab/mesh/demo';
import { launch } from '../lab/mesh/launch';
import { netnsGet } from '../native/netns-http';
import { accessEntriesSince, appMain, proxyLogMarks } from '../lab/mesh/traffic';
import { meshDown, meshUp } from '../lab/mesh/up';
import { runInLab } from '../lab/spawn';
import { setLabHboneEngine } from '../lab/mesh/proxies';
import { LAB_NAME_RE, labStateDir, readLabProcesses, tryLoadLabState, type LabPod, type LabTopology } from '../lab/state';
import { sleep } from '../lab/sys';
import { formatTable } from '../common/table';
import { labUp } from '../lab/up';
import { MAX_PODS_PER_NODE } from '../lab/topology';
import { benchOptions } from './support/args';
import { carriedBy, carriedVerdict } from './support/carried';
import { CONNGEN, type ConnRate } from './support/conngen';
import { LOADGEN, type Latency } from './support/loadgen';
import { makeCerts, stunnelConf, type StunnelService } from './support/stunnel';
import { formatRatio, formatSpread, ratio, roundOrder, spread } from './support/rounds';
import { readThreads, threadUse, type GroupUse, type ThreadGroup, type ThreadSample } from './support/proc-threads';
import { flatness, memoryParts, residentParts, settled, type Flatness, type MemoryUsage, type ProxySample } from './support/soak';
import { ensureTools } from './support/tools';
import { ADMIN_PORT, READY_PORT } from '../common/contracts/ports';
import { DATAPLANE_MODE_LABEL } from '../common/contracts/labels';

const IPERF_PORT = 5201;
/** The latency run's default length per rate. */
const LATENCY_SECONDS = 10;
/**
 * Idle memory is read once the node proxies have settled after enrolling every pod (and again
 * after the load): at least this long, then until each proxy's RSS holds still (settled() over
 * readings SETTLE_STEP_MS apart), at most IDLE_SETTLE_MAX_MS.
 */
const IDLE_SETTLE_MS = 25_000;
const IDLE_SETTLE_MAX_MS = 90_000;
/**
 * After the load the proxies are idle only once the HBONE pool has closed the connections the load
 * opened (its idle timeout, 60 s: native/hbone-client.ts) and the proxy's idle collection has run
 * after that (node-proxy/mesh/idle-gc.ts: 10 s of quiet, looked at every 5 s): read no sooner.
 */
const AFTER_LOAD_SETTLE_MS = 80_000;
const AFTER_LOAD_SETTLE_MAX_MS = 120_000;
const SETTLE_STEP_MS = 2_000;
const ECHO_PORT = 7000;
const NS = 'default';
const SOURCE_ID = spiffeId(NS, 'default');

const say = (m: string): void => void process.stderr.write(`[bench mesh] ${m}\n`);

function lastJson<T>(text: string): T {
  return JSON.parse(text.trim().split('\n').pop() ?? '{}') as T;
}

async function iperf(topo: LabTopology, from: string, host: string, port: number, seconds: number, streams = 1): Promise<number> {
  // iperf3 -s runs one test at a time and may still be finishing the previous one
  for (let attempt = 1; ; attempt++) {
    try {
      return await iperfOnce(topo, from, host, port, seconds, streams);
    } catch (e) {
      if (attempt >= 10 || !/busy/.test((e as Error).message)) throw e;
      await sleep(500);
    }
  }
}

async function iperfOnce(topo: LabTopology, from: string, host: string, port: number, seconds: number, streams: number): Promise<number> {
  const r = await runInLab(topo, from, ['iperf3', '-c', host, '-p', String(port), '-t', String(seconds), '-P', String(streams), '-J'], (seconds + 20) * 1000);
  try {
    const j = JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
    if (j.error) throw new Error(j.error);
    return (j.end?.sum_received?.bits_per_second ?? 0) / 1e9;
  } catch (e) {
    throw new Error(`iperf3 from ${from} to ${host}:${port} failed: ${(e as Error).message} ${r.stderr.slice(-300)}`);
  }
}

async function latencyRun(topo: LabTopology, from: string, host: string, port: number, o: { rate: number; ms: number; conns: number }): Promise<Latency> {
  const r = await runInLab(
    topo,
    from,
    [process.execPath, '-e', LOADGEN, '--', host, String(port), String(o.rate), String(o.ms), String(o.conns), '64'],
    o.ms + 40_000,
  );
  return lastJson<Latency>(r.stdout);
}

async function connRate(topo: LabTopology, from: string, host: string, port: number, o: { ms: number; concurrency: number; size: number }): Promise<ConnRate> {
  const r = await runInLab(
    topo,
    from,
    [process.execPath, '-e', CONNGEN, '--', host, String(port), String(o.ms), String(o.concurrency), String(o.size)],
    o.ms + 40_000,
  );
  return lastJson<ConnRate>(r.stdout);
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

/** One process of a row's tunnel and what it used in the latency run at the last rate. */
interface ProcFigure {
  /** "node-proxy node1", "stunnel client", "stunnel server". */
  label: string;
  cpuPer1k: number;
  groups: Record<ThreadGroup, GroupUse>;
  requests: number;
}

/** The processes that carry a mode's bytes to `destPod`: both node proxies, stunnel's client and that pod's server, or none. */
function tunnelProcesses(lab: string, mode: Mode, destPod: string): { label: string; pid: number }[] {
  const ps = readLabProcesses(lab);
  if (meshed(mode)) return ps.filter((p) => p.name === 'node-proxy').map((p) => ({ label: `node-proxy ${p.place}`, pid: p.pid }));
  if (mode !== 'stunnel') return [];
  return ps
    .filter((p) => p.name === 'bench-stunnel-client' || (p.name === 'bench-stunnel-server' && p.place === destPod))
    .map((p) => ({ label: p.name === 'bench-stunnel-client' ? 'stunnel client' : 'stunnel server', pid: p.pid }));
}

function proxyPids(lab: string): number[] {
  return readLabProcesses(lab)
    .filter((p) => p.name === 'node-proxy')
    .map((p) => p.pid);
}

/** Workload keys (namespace/name) the node proxies have enrolled, from their admin endpoint. */
async function enrolled(topo: LabTopology): Promise<string[]> {
  const keys: string[] = [];
  for (const n of topo.nodes) {
    const r = await netnsGet(n.netnsPath, '127.0.0.1', ADMIN_PORT, '/workloads');
    keys.push(...(JSON.parse(r.body) as Array<{ key: string }>).map((w) => w.key));
  }
  return keys;
}

/** Whether every node proxy answers 200 on its readiness port (certificates, HBONE listeners). */
async function allReady(topo: LabTopology): Promise<boolean> {
  for (const n of topo.nodes) {
    const r = await netnsGet(n.netnsPath, '127.0.0.1', READY_PORT, '/healthz/ready').catch(() => undefined);
    if (r?.status !== 200) return false;
  }
  return true;
}

/** Labels namespace default and waits until the node proxies have (un)enrolled `pods`. */
async function setMode(topo: LabTopology, api: ApiClient, mode: 'ambient' | 'none', pods: readonly LabPod[]): Promise<void> {
  await api.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { [DATAPLANE_MODE_LABEL]: mode } } }]);
  const want = pods.map((p) => `${NS}/${p.name}`);
  const waitMs = 20_000 + 500 * pods.length; // each workload's certificate and HBONE listener come after
  const deadline = Date.now() + waitMs;
  for (;;) {
    const keys = new Set(await enrolled(topo));
    const wrong = want.filter((k) => keys.has(k) !== (mode === 'ambient'));
    // enrolled is not yet served: each workload's certificate and HBONE listener come after
    if (wrong.length === 0 && (await allReady(topo))) return;
    if (Date.now() > deadline)
      throw new Error(
        `after ${waitMs / 1000} s the node proxies still have ${wrong.join(', ')} ${mode === 'ambient' ? 'not enrolled' : 'enrolled'}; see their logs in /run/nodemesh/labs/${topo.lab}/logs`,
      );
    await sleep(200);
  }
}

interface Dest {
  path: 'cross-node' | 'same-node';
  pod: LabPod;
}

type Mode = 'mesh' | 'native' | 'direct' | 'stunnel';
const MODE_NAME: Record<Mode, string> = { mesh: 'mesh', native: 'mesh, native HBONE', direct: 'direct (no mesh)', stunnel: 'stunnel (mTLS)' };
/** The modes that run through the node proxies, and the HBONE engine each runs with. */
const ENGINE_OF: Partial<Record<Mode, 'node' | 'native'>> = { mesh: 'node', native: 'native' };
const meshed = (m: Mode): boolean => ENGINE_OF[m] !== undefined;

/** Restarts the lab's node proxies with `engine` and waits until they serve every pod with it. */
async function switchEngine(topo: LabTopology, lab: string, engine: 'node' | 'native'): Promise<void> {
  say(`node proxies: restarting with the ${engine} HBONE engine`);
  setLabHboneEngine(lab, engine);
  const old = proxyPids(lab);
  for (const pid of old) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone meanwhile
    }
  }
  // the lab's supervisor starts them again (after its back-off), with the engine just written
  const deadline = Date.now() + 60_000;
  for (;;) {
    const now = proxyPids(lab);
    const fresh = now.length === topo.nodes.length && now.every((p) => !old.includes(p));
    if (fresh && (await allReady(topo).catch(() => false))) break;
    if (Date.now() > deadline)
      throw new Error(`the node proxies did not come back with the ${engine} HBONE engine within 60 s; see /run/nodemesh/labs/${lab}/logs`);
    await sleep(200);
  }
  for (const n of topo.nodes) {
    const r = await netnsGet(n.netnsPath, '127.0.0.1', ADMIN_PORT, '/stats');
    const got = (JSON.parse(r.body) as { mesh?: { hboneEngine?: string } }).mesh?.hboneEngine;
    if (got !== engine) throw new Error(`the node proxy of ${n.name} runs the ${got ?? 'unknown'} HBONE engine, not ${engine}`);
  }
}

/** One mode on one path in one round. */
interface Sample {
  gbps: number;
  gbpsN: number;
  lat: Latency[];
  conns: ConnRate;
  carried: { ok: boolean; text: string };
  /** CPU seconds per 1,000 requests of the tunnel's processes summed (both node proxies; stunnel's client and server). */
  cpuPer1k?: number;
  /** The same per process, with the node proxies' thread groups. */
  procs?: ProcFigure[];
  /** Both node proxies' CPU milliseconds per new connection of the conn/s run. */
  connCpuMs?: number;
  rssMiB?: number;
}

/** One mode on one path: a sample per round, in round order. */
interface Row {
  path: string;
  mode: Mode;
  samples: Sample[];
}

interface Load {
  start: number[];
  end: number[];
}

async function main(): Promise<number> {
  const values = benchOptions([
    'lab',
    'seconds',
    'streams',
    'rates',
    'latency-seconds',
    'connections',
    'conn-seconds',
    'conn-concurrency',
    'conn-size',
    'rounds',
    'pods',
    'soak',
    'soak-rate',
    'profile',
    'modes',
    'engines',
    'measure',
  ]);
  const lab = values.lab ?? 'nmbench';
  if (!LAB_NAME_RE.test(lab)) throw new Error(`--lab ${lab}: a lab name is 1-8 of [a-z0-9]`);
  const seconds = Number(values.seconds ?? 3);
  const streams = Number(values.streams ?? 8);
  const rates = (values.rates ?? '500,1000').split(',').map(Number);
  const rounds = Number(values.rounds ?? 3);
  const podsPerNode = Number(values.pods ?? 3);
  const soakMinutes = values.soak === undefined ? undefined : Number(values.soak);
  const soakRate = Number(values['soak-rate'] ?? 1000);
  if (!(Number.isInteger(podsPerNode) && podsPerNode >= 3 && podsPerNode <= MAX_PODS_PER_NODE))
    throw new Error(`--pods ${values.pods}: pods per node, 3..${MAX_PODS_PER_NODE}`);
  if (soakMinutes !== undefined && !(soakMinutes > 0 && soakMinutes <= 120)) throw new Error(`--soak ${values.soak}: minutes, more than 0 and at most 120`);
  if (!(Number.isInteger(soakRate) && soakRate > 0)) throw new Error(`--soak-rate ${values['soak-rate']}: requests per second, a positive integer`);
  const modeList = (values.modes ?? 'mesh,direct,stunnel').split(',');
  const badMode = modeList.find((m) => !['mesh', 'direct', 'stunnel'].includes(m));
  if (badMode) throw new Error(`--modes ${values.modes}: each of mesh, direct, stunnel (comma-separated), not ${badMode}`);
  const engineList = (values.engines ?? 'native').split(',');
  const badEngine = engineList.find((e) => !['node', 'native'].includes(e));
  if (badEngine) throw new Error(`--engines ${values.engines}: each of node, native (comma-separated), not ${badEngine}`);
  // the mesh mode once per engine asked for: 'mesh' (node), 'native'
  const modes = [...new Set(modeList)].flatMap((m): Mode[] =>
    m === 'mesh' ? (['node', 'native'] as const).filter((e) => engineList.includes(e)).map((e) => (e === 'node' ? 'mesh' : 'native')) : [m as Mode],
  );
  const measureList = (values.measure ?? 'bulk,latency,conn').split(',');
  const badMeasure = measureList.find((m) => !['bulk', 'latency', 'conn', 'memory'].includes(m));
  if (badMeasure) throw new Error(`--measure ${values.measure}: each of bulk, latency, conn, memory (comma-separated), not ${badMeasure}`);
  const measures = new Set(measureList);
  // 10 s: at 4 s the CPU per 1,000 requests moved ±25 % between rounds (a few thousand requests
  // against the proxies' timers, GC and the load generator's start), and p99 rested on 40 samples
  const lo = { ms: Number(values['latency-seconds'] ?? LATENCY_SECONDS) * 1000, conns: Number(values.connections ?? 16) };
  const co = {
    ms: Number(values['conn-seconds'] ?? 3) * 1000,
    concurrency: Number(values['conn-concurrency'] ?? 100),
    size: Number(values['conn-size'] ?? 16384),
  };
  if (![seconds, streams, rounds, ...rates, lo.ms, lo.conns, co.ms, co.concurrency, co.size].every((v) => Number.isInteger(v) && v > 0)) {
    throw new Error(
      '--seconds, --streams, --rounds, --rates (comma-separated), --latency-seconds, --connections, --conn-seconds, --conn-concurrency and --conn-size take positive integers',
    );
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    say('skipped: needs root (it builds a netns lab)');
    return 0;
  }
  ensureTools({ iperf3: 'iperf3', stunnel4: 'stunnel4', openssl: 'openssl' }, say);
  const tmp = mkdtempSync(join(tmpdir(), 'nm-bench-mesh-'));
  const down = async (): Promise<void> => {
    const s = tryLoadLabState(lab);
    if (s) await meshDown(s, () => undefined).catch((e: unknown) => say(`warning: mesh down: ${(e as Error).message}`));
    await labDown(lab).catch((e: unknown) => say(`warning: lab down: ${(e as Error).message}`));
  };
  // the final removal once, whether the run ends, fails or is interrupted (both may ask for it)
  let removing: Promise<void> | undefined;
  const finalDown = (): Promise<void> => (removing ??= down().finally(() => rmSync(tmp, { recursive: true, force: true })));
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      say(`${sig}: removing lab ${lab}`);
      void finalDown().finally(() => process.exit(130));
    });
  }
  await down(); // a lab of this name left by an interrupted run
  const rows: Row[] = [];
  const load: Load = { start: loadavg(), end: [] };
  let idle: IdleMemory[] = [];
  /** The same once the load is over (the soak; the rounds when --measure has memory). */
  let idleAfter: IdleMemory[] = [];
  let soakResult: SoakResult | undefined;
  let src: LabPod | undefined;
  let dsts: Dest[] = [];
  try {
    say(`lab ${lab}: 2 nodes x ${podsPerNode} pods, mesh without the demo`);
    const { state: topo } = await labUp({ lab, nodes: 2, podsPerNode });
    // the engine the node proxies start with: the first mesh mode's
    let engineNow: 'node' | 'native' = ENGINE_OF[modes.find(meshed) ?? 'mesh'] ?? 'node';
    mkdirSync(join(labStateDir(lab), 'mesh'), { recursive: true });
    setLabHboneEngine(lab, engineNow);
    // --profile DIR: the processes the mesh starts (node proxies among them) write V8 CPU profiles
    // there when they stop (common/cpu-profile.ts; named by command and pid)
    if (values.profile) process.env.NODEMESH_CPU_PROFILE = values.profile;
    await meshUp(topo, { mesh: true, demo: false }, (m) => say(m));
    if (values.profile) say(`profiling node proxies ${proxyPids(lab).join(', ')} into ${values.profile}`);
    delete process.env.NODEMESH_CPU_PROFILE;
    const pod = (name: string): LabPod => {
      const p = topo.pods.find((x) => x.name === name);
      if (!p) throw new Error(`lab ${lab} has no pod ${name}`);
      return p;
    };
    const source = pod('pod1-1');
    src = source;

    dsts = [
      { path: 'cross-node', pod: pod('pod2-1') },
      { path: 'same-node', pod: pod('pod1-2') },
    ];
    // The conn/s runs open tens of thousands of connections within a minute from one address to
    // one address:port, and whoever closes first keeps a TIME_WAIT socket: the client in the source
    // pod, and through the mesh also the node proxy's connection to the app in the destination pod
    // (it passes the client's FIN on first). Once most ephemeral ports of that pair hold one (40k
    // seen after a run), connect() slows down searching the port range, and a row's rate depended
    // on how many the rows before it left (direct fell from 4,668/s to 344/s between rounds, the
    // mesh's same-node row from 2,769/s to 347/s). Source and destination pods reuse them
    // (tcp_tw_reuse=1, per netns), as load generators are set up to (docs/node-proxy.md).
    for (const p of [source, ...dsts.map((d) => d.pod)]) {
      const tw = await runInLab(topo, p.name, ['sh', '-c', 'echo 1 > /proc/sys/net/ipv4/tcp_tw_reuse']);
      if (tw.code !== 0) throw new Error(`cannot set net.ipv4.tcp_tw_reuse in ${p.name}: ${tw.stderr.trim()}`);
    }
    const logs = join(tmp, 'logs');
    for (const d of dsts) {
      launch(topo, d.pod.name, 'bench-iperf3', ['iperf3', '-s', '-p', String(IPERF_PORT)], join(logs, `${d.pod.name}-iperf3.log`));
      launch(topo, d.pod.name, 'bench-echo', [process.execPath, appMain(), 'echo', '--port', String(ECHO_PORT)], join(logs, `${d.pod.name}-echo.log`));
    }
    if (modes.includes('stunnel')) startStunnel(topo, tmp, logs, source, dsts);
    await sleep(1000);

    type Want = { protocol: string; identity: string; expected: number } | 'no proxy';
    // how each mode reaches a destination (host, port), what its destination proxy must log, on which ports
    const plans: Record<Mode, { target: (d: Dest, port: number, i: number) => [string, number]; meshed: boolean; logPorts: number[] }> = {
      mesh: { target: (d, port) => [d.pod.ip, port], meshed: true, logPorts: [IPERF_PORT, ECHO_PORT] },
      native: { target: (d, port) => [d.pod.ip, port], meshed: true, logPorts: [IPERF_PORT, ECHO_PORT] },
      direct: { target: (d, port) => [d.pod.ip, port], meshed: false, logPorts: [IPERF_PORT, ECHO_PORT] },
      // a proxy would see the connections to the stunnel server's ports
      stunnel: {
        target: (_d, port, i) => ['127.0.0.1', 20_000 + i * 10 + (port === IPERF_PORT ? 1 : 2)],
        meshed: false,
        logPorts: [IPERF_PORT + 10_000, ECHO_PORT + 10_000],
      },
    };
    const measure = async (mode: Mode, round: number): Promise<void> => {
      const plan = plans[mode];
      for (const [i, d] of dsts.entries()) {
        const tag = `round ${round + 1}/${rounds} ${MODE_NAME[mode]} ${d.path}`;
        const marks = proxyLogMarks(topo);
        const [ih, ip] = plan.target(d, IPERF_PORT, i);
        let gbps = Number.NaN;
        let gbpsN = Number.NaN;
        if (measures.has('bulk')) {
          say(`${tag}: iperf3 ${seconds} s`);
          gbps = await iperf(topo, source.name, ih, ip, seconds);
          say(`${tag}: iperf3 ${seconds} s, ${streams} streams`);
          gbpsN = await iperf(topo, source.name, ih, ip, seconds, streams);
        }
        const [lh, lp] = plan.target(d, ECHO_PORT, i);
        const pids = proxyPids(lab);
        // the processes that carry this row's bytes: both node proxies, or the stunnel client and this destination's server
        const tunnel = tunnelProcesses(lab, mode, d.pod.name);
        const lat: Latency[] = [];
        let before: ProcUse[] = [];
        let threadsBefore: ThreadSample[][] = [];
        for (const rate of measures.has('latency') ? rates : []) {
          say(`${tag}: ${rate} req/s for ${lo.ms / 1000} s on ${lo.conns} connections`);
          before = tunnel.map((p) => procUse(p.pid));
          threadsBefore = tunnel.map((p) => readThreads(p.pid));
          lat.push(await latencyRun(topo, source.name, lh, lp, { ...lo, rate }));
        }
        const after = tunnel.map((p) => procUse(p.pid));
        const threadsAfter = tunnel.map((p) => readThreads(p.pid));
        const cpu = after.reduce((a, u, k) => a + (u.cpu - (before[k]?.cpu ?? 0)), 0);
        const last = lat[lat.length - 1];
        const perK = (x: number): number => (last?.done ? (x * 1000) / last.done : Number.NaN);
        const procs: ProcFigure[] = before.length
          ? tunnel.map((p, k) => ({
              label: p.label,
              cpuPer1k: perK(after[k]!.cpu - before[k]!.cpu),
              groups: threadUse(p.pid, threadsBefore[k]!, threadsAfter[k]!),
              requests: last?.done ?? 0,
            }))
          : [];
        let conns: ConnRate = { done: Number.NaN, errors: 0, seconds: 0, perSecond: Number.NaN };
        let connCpuMs: number | undefined;
        if (measures.has('conn')) {
          say(`${tag}: new connections for ${co.ms / 1000} s, ${co.concurrency} at a time, ${co.size} B echo each`);
          const cpuBefore = plan.meshed ? pids.map(procUse) : [];
          conns = await connRate(topo, source.name, lh, lp, co);
          if (plan.meshed && conns.done > 0) connCpuMs = (pids.map(procUse).reduce((a, u, k) => a + (u.cpu - (cpuBefore[k]?.cpu ?? 0)), 0) * 1000) / conns.done;
        }
        // Access-log lines come when connections close: through the mesh wait until every one of
        // this row's connections is logged (iperf3's control and data connections, the latency run's,
        // the connection-rate run's) — so none is left to show up in the next mode's window; without
        // the mesh, long enough for a stray one to show.
        const w: Want = plan.meshed
          ? {
              protocol: d.path === 'cross-node' ? 'HBONE' : 'same-node',
              identity: SOURCE_ID,
              // iperf3: a control and a data connection, then a control and STREAMS data connections
              expected: (measures.has('bulk') ? 2 + 1 + streams : 0) + lat.length * lo.conns + (measures.has('conn') ? conns.done : 0),
            }
          : 'no proxy';
        const verdict = (): { ok: boolean; text: string } => carriedVerdict(carriedBy(accessEntriesSince(topo, marks), source.ip, d.pod.ip, plan.logPorts), w);
        let carried = verdict();
        for (const until = Date.now() + (w === 'no proxy' ? 1000 : 5000); Date.now() < until && (w === 'no proxy' || !carried.ok); ) {
          await sleep(100);
          carried = verdict();
        }
        let row = rows.find((r) => r.path === d.path && r.mode === mode);
        if (!row) rows.push((row = { path: d.path, mode, samples: [] }));
        row.samples[round] = {
          gbps,
          gbpsN,
          lat,
          conns,
          carried,
          cpuPer1k: tunnel.length && last?.done ? (cpu * 1000) / last.done : undefined,
          procs,
          connCpuMs,
          rssMiB: plan.meshed ? after.reduce((a, u) => a + u.rssMiB, 0) : undefined,
        };
      }
    };

    const c = labConnection(lab);
    const api = new ApiClient({ server: c.server, token: c.token, createConnection: c.createConnection, ca: c.ca });
    const pods = [source, ...dsts.map((d) => d.pod)];
    // every pod of the lab is a workload of namespace default: enrol them all once, let the node
    // proxies settle and read what their memory is made of while idle
    say(`enrolling namespace ${NS} (dataplane-mode=ambient): ${topo.pods.length} workloads`);
    await setMode(topo, api, 'ambient', topo.pods);
    let labelled: 'ambient' | 'none' | undefined = 'ambient';
    // idle: what the enrolment burst left committed is given back some seconds after it (the
    // proxy's idle collection, V8's memory reducer); 5 s after enrolment a proxy still held ~2 MiB
    idle = await idleMemory(topo, lab, await settle(lab));
    if (measures.size === 1 && measures.has('memory')) return finishMemory(idle, { lab, podsPerNode, load: { start: load.start, end: loadavg() } });
    if (soakMinutes !== undefined) {
      const [lh, lp] = plans.mesh.target(dsts[0]!, ECHO_PORT, 0);
      soakResult = await soak(topo, lab, source.name, lh, lp, { minutes: soakMinutes, rate: soakRate, conns: lo.conns });
      idleAfter = await idleMemory(topo, lab, await settle(lab, AFTER_LOAD_SETTLE_MS, AFTER_LOAD_SETTLE_MAX_MS));
      return finishSoak(idle, idleAfter, soakResult, { lab, podsPerNode, load: { start: load.start, end: loadavg() } });
    }
    for (let round = 0; round < rounds; round++) {
      for (const mode of roundOrder(modes, round)) {
        const want = meshed(mode) ? 'ambient' : 'none';
        const engine = ENGINE_OF[mode];
        if (engine && engine !== engineNow) {
          await switchEngine(topo, lab, engine);
          engineNow = engine;
          if (labelled === 'ambient') await setMode(topo, api, 'ambient', pods); // enrolled again by the new processes
        }
        if (labelled !== want) {
          say(`${want === 'ambient' ? 'enrolling' : 'unenrolling'} namespace ${NS} (dataplane-mode=${want})`);
          await setMode(topo, api, want, pods);
          labelled = want;
        }
        await measure(mode, round);
      }
    }
    if (measures.has('memory')) {
      // the mesh again, idle after the load: enrolled in the last round's mode or enrolled again
      if (labelled !== 'ambient') await setMode(topo, api, 'ambient', pods);
      idleAfter = await idleMemory(topo, lab, await settle(lab, AFTER_LOAD_SETTLE_MS, AFTER_LOAD_SETTLE_MAX_MS));
    }
  } finally {
    load.end = loadavg();
    say(`removing lab ${lab}`);
    await finalDown();
  }
  return finish(rows, { rates, streams, seconds, rounds, lo, co, src, dsts, lab, load, idle, idleAfter });
}

interface IdleMemory {
  node: string;
  /** How long the proxies took to settle before this reading (settled false: read at the limit). */
  settle: Settle;
  workloads: number;
  memory: MemoryUsage;
  /** Resident memory backed by files (the node binary: shared, fixed) and anonymous (the process's own), MiB. */
  resident: { fileMiB: number; anonMiB: number };
  threads: number;
  fds: number;
}

function threadsOf(pid: number): number {
  return Number(/Threads:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

const fdsOf = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

interface Settle {
  seconds: number;
  settled: boolean;
}

/**
 * Waits until the node proxies' memory has settled (at least `minMs`, then until each one's RSS
 * holds still, at most `maxMs`).
 */
async function settle(lab: string, minMs = IDLE_SETTLE_MS, maxMs = IDLE_SETTLE_MAX_MS): Promise<Settle> {
  const t0 = Date.now();
  const pids = proxyPids(lab);
  const rss: number[][] = pids.map(() => []);
  for (;;) {
    await sleep(SETTLE_STEP_MS);
    pids.forEach((pid, i) => rss[i]!.push(procUse(pid).rssMiB));
    const ms = Date.now() - t0;
    if (ms >= minMs && settled(rss)) return { seconds: ms / 1000, settled: true };
    if (ms >= maxMs) return { seconds: ms / 1000, settled: false };
  }
}

const settleText = (idle: readonly IdleMemory[]): string => {
  const s = idle[0]?.settle;
  return s ? (s.settled ? `settled after ${s.seconds.toFixed(0)} s` : `NOT settled after ${s.seconds.toFixed(0)} s`) : '';
};

/** Each node proxy's enrolled workloads, memory (its own /stats), threads and open fds. */
async function idleMemory(topo: LabTopology, lab: string, settle: Settle): Promise<IdleMemory[]> {
  const pids = readLabProcesses(lab).filter((p) => p.name === 'node-proxy');
  const out: IdleMemory[] = [];
  for (const n of topo.nodes) {
    const stats = JSON.parse((await netnsGet(n.netnsPath, '127.0.0.1', ADMIN_PORT, '/stats')).body) as { memory?: MemoryUsage };
    const workloads = (JSON.parse((await netnsGet(n.netnsPath, '127.0.0.1', ADMIN_PORT, '/workloads')).body) as unknown[]).length;
    const pid = pids.find((p) => p.place === n.name)?.pid ?? pids[out.length]?.pid;
    if (!stats.memory || pid === undefined) throw new Error(`node proxy of ${n.name}: no memory figures in /stats`);
    const resident = residentParts(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    out.push({ node: n.name, settle, workloads, memory: stats.memory, resident, threads: threadsOf(pid), fds: fdsOf(pid) });
  }
  return out;
}

interface SoakResult {
  minutes: number;
  rate: number;
  latency: Latency;
  /** Per node proxy (by pid order): its samples and the CPU seconds it used over the run. */
  series: { pid: number; samples: ProxySample[]; cpuS?: number }[];
}

/** SOAK minutes of RATE req/s cross-node through the mesh; both proxies' RSS, fds and threads every 10 s. */
async function soak(
  topo: LabTopology,
  lab: string,
  from: string,
  host: string,
  port: number,
  o: { minutes: number; rate: number; conns: number },
): Promise<SoakResult> {
  const pids = proxyPids(lab);
  const series: SoakResult['series'] = pids.map((pid) => ({ pid, samples: [] as ProxySample[] }));
  const cpu0 = pids.map((pid) => procUse(pid).cpu);
  const t0 = performance.now();
  const sample = (): void => {
    const at = (performance.now() - t0) / 1000;
    for (const s of series) {
      try {
        s.samples.push({ at, rssMiB: procUse(s.pid).rssMiB, fds: fdsOf(s.pid), threads: threadsOf(s.pid) });
      } catch {
        // the process is gone: the latency run fails and says so
      }
    }
  };
  say(`soak: ${o.rate} req/s cross-node for ${o.minutes} min on ${o.conns} connections; sampling the node proxies every 10 s`);
  sample();
  const timer = setInterval(sample, 10_000);
  try {
    const latency = await latencyRun(topo, from, host, port, { rate: o.rate, ms: Math.round(o.minutes * 60_000), conns: o.conns });
    for (const [i, s] of series.entries()) s.cpuS = procUse(s.pid).cpu - cpu0[i]!;
    // judged: the samples taken while the load ran (the load's own connections are open then)
    return { minutes: o.minutes, rate: o.rate, latency, series };
  } finally {
    clearInterval(timer);
  }
}

function idleTable(idle: readonly IdleMemory[]): string {
  return formatTable(
    ['NODE PROXY', 'WORKLOADS', 'RSS MiB', 'V8 HEAP MiB (used)', 'EXTERNAL MiB', 'OTHER MiB', 'RSS FILE / ANON MiB', 'THREADS', 'FDS'],
    idle.map((m) => {
      const p = memoryParts(m.memory);
      return [
        m.node,
        String(m.workloads),
        p.rss.toFixed(1),
        `${p.heap.toFixed(1)} (${p.heapUsed.toFixed(1)})`,
        p.external.toFixed(1),
        p.other.toFixed(1),
        `${m.resident.fileMiB.toFixed(1)} / ${m.resident.anonMiB.toFixed(1)}`,
        String(m.threads),
        String(m.fds),
      ];
    }),
  );
}

/** `--measure memory`: the idle table; 1 when a node proxy has not enrolled every pod of its node. */
function finishMemory(idle: readonly IdleMemory[], o: { lab: string; podsPerNode: number; load: Load }): number {
  const la = (l: number[]): string => l.map((x) => x.toFixed(2)).join(' ');
  process.stdout.write(
    `\nmesh memory (lab ${o.lab}, 2 nodes x ${o.podsPerNode} pods, all enrolled), the node proxies idle before any load (${settleText(idle)}); ` +
      `load average ${la(o.load.start)} at start, ${la(o.load.end)} at end\n${idleTable(idle)}\n`,
  );
  const short = idle.filter((m) => m.workloads !== o.podsPerNode);
  for (const m of short) process.stderr.write(`bench mesh: the node proxy of ${m.node} has ${m.workloads} workloads enrolled, not ${o.podsPerNode}\n`);
  return short.length ? 1 : 0;
}

function finishSoak(idle: readonly IdleMemory[], idleAfter: readonly IdleMemory[], r: SoakResult, o: { lab: string; podsPerNode: number; load: Load }): number {
  const la = (l: number[]): string => l.map((x) => x.toFixed(2)).join(' ');
  const warmup = Math.min(60, (r.minutes * 60) / 5);
  const rows = r.series.map((s, i) => {
    const judge = (f: (x: ProxySample) => number): Flatness =>
      flatness(
        s.samples.map((x) => ({ at: x.at, value: f(x) })),
        warmup,
      );
    const rss = judge((x) => x.rssMiB);
    const fds = judge((x) => x.fds);
    const first = s.samples[0];
    const last = s.samples[s.samples.length - 1];
    return [
      `node${i + 1} (pid ${s.pid})`,
      String(s.samples.length),
      `${first?.rssMiB.toFixed(1)} -> ${last?.rssMiB.toFixed(1)}`,
      `${rss.median.toFixed(1)} (${rss.min.toFixed(1)}–${rss.max.toFixed(1)}) ±${rss.worstPct.toFixed(1)}% ${rss.flat ? 'flat' : 'NOT FLAT'}`,
      `${first?.fds} -> ${last?.fds} (${fds.min}–${fds.max}) ${fds.flat ? 'flat' : 'NOT FLAT'}`,
      `${first?.threads} -> ${last?.threads}`,
      s.cpuS === undefined || r.latency.done === 0 ? '-' : ((s.cpuS * 1000) / r.latency.done).toFixed(3),
    ];
  });
  const rssSeries = r.series.map((s, i) => `node${i + 1} RSS MiB every 10 s: ${s.samples.map((x) => x.rssMiB.toFixed(0)).join(' ')}`).join('\n');
  const table = formatTable(
    ['NODE PROXY', 'SAMPLES', 'RSS MiB first -> last', `RSS after ${warmup} s: median (min–max)`, 'FDS first -> last (range)', 'THREADS', 'CPU-s / 1k req'],
    rows,
  );
  const l = r.latency;
  process.stdout.write(
    `\nmesh soak (lab ${o.lab}, 2 nodes x ${o.podsPerNode} pods, all enrolled): ${r.rate} req/s cross-node for ${r.minutes} min; load average ${la(o.load.start)} at start, ${la(o.load.end)} at end\n` +
      `idle, after enrolment (${settleText(idle)}):\n${idleTable(idle)}\nunder load (flat: every sample after the warm-up within ±5 % of the median):\n${table}\n${rssSeries}\n` +
      `idle again after the load (${settleText(idleAfter)}):\n${idleTable(idleAfter)}\n` +
      `requests ${l.done}/${l.requests} answered, errors ${l.errors}, p50 ${l.p50.toFixed(2)} ms, p99 ${l.p99.toFixed(2)} ms\n`,
  );
  const flat = rows.every((row) => row[3]!.endsWith(' flat') && row[4]!.endsWith(' flat'));
  return l.done === l.requests && l.errors === 0 && flat ? 0 : 1;
}

/** stunnel servers in the destination pods and one client in the source pod (not enrolled: the same two hops in mutual TLS). */
function startStunnel(topo: LabTopology, tmp: string, logs: string, source: LabPod, dsts: readonly Dest[]): void {
  makeCerts(tmp);
  for (const [i, d] of dsts.entries()) {
    const services: StunnelService[] = [
      { name: 'iperf', accept: `0.0.0.0:${IPERF_PORT + 10_000}`, connect: `127.0.0.1:${IPERF_PORT}` },
      { name: 'echo', accept: `0.0.0.0:${ECHO_PORT + 10_000}`, connect: `127.0.0.1:${ECHO_PORT}` },
    ];
    const conf = join(tmp, `server-${i}.conf`);
    writeFileSync(conf, stunnelConf(tmp, 'server', services));
    launch(topo, d.pod.name, 'bench-stunnel-server', ['stunnel4', conf], join(logs, `${d.pod.name}-stunnel.log`));
  }
  const clientServices = dsts.flatMap((d, i) => [
    { name: `iperf${i}`, accept: `127.0.0.1:${20_000 + i * 10 + 1}`, connect: `${d.pod.ip}:${IPERF_PORT + 10_000}` },
    { name: `echo${i}`, accept: `127.0.0.1:${20_000 + i * 10 + 2}`, connect: `${d.pod.ip}:${ECHO_PORT + 10_000}` },
  ]);
  const cconf = join(tmp, 'client.conf');
  writeFileSync(cconf, stunnelConf(tmp, 'client', clientServices));
  launch(topo, source.name, 'bench-stunnel-client', ['stunnel4', cconf], join(logs, `${source.name}-stunnel.log`));
}

interface RunShape {
  rates: readonly number[];
  streams: number;
  seconds: number;
  rounds: number;
  lo: { ms: number; conns: number };
  co: { ms: number; concurrency: number; size: number };
  src: LabPod | undefined;
  dsts: readonly Dest[];
  lab: string;
  load: Load;
  idle: readonly IdleMemory[];
  idleAfter: readonly IdleMemory[];
}

/** "HBONE x43/45/44" when every round was carried as claimed; else each round's verdict. */
function carriedText(samples: readonly Sample[]): string {
  const texts = samples.map((s) => s.carried.text);
  const counted = texts.map((t) => /^(.*) x(\d+)$/.exec(t));
  if (samples.every((s) => s.carried.ok) && counted.every((m) => m && m[1] === counted[0]![1]))
    return `${counted[0]![1]} x${counted.map((m) => m![2]).join('/')}`;
  return [...new Set(texts)].join('; ');
}

const of = (r: Row, f: (s: Sample) => number | undefined): number[] => r.samples.map((s) => f(s) ?? Number.NaN);

/** Prints the tables; 1 when a row did not measure what it claims. */
function finish(rows: readonly Row[], o: RunShape): number {
  const latHeads = o.rates.flatMap((r) => [`p50 ms @${r}/s`, 'p99 ms']);
  const table = formatTable(
    [
      'PATH',
      'MODE',
      'CARRIED',
      'BULK Gbit/s',
      `${o.streams} STREAMS Gbit/s`,
      ...latHeads,
      'ERRORS',
      'CONN/s',
      'PROXY CPU ms/conn',
      `CPU s/1k req @${o.rates[o.rates.length - 1]}/s (both ends)`,
      'PROXY RSS MiB (2 nodes)',
    ],
    rows.map((r) => [
      r.path,
      MODE_NAME[r.mode],
      carriedText(r.samples),
      formatSpread(spread(of(r, (s) => s.gbps)), 2),
      formatSpread(spread(of(r, (s) => s.gbpsN)), 2),
      ...o.rates.flatMap((_rate, k) => [formatSpread(spread(of(r, (s) => s.lat[k]?.p50)), 2), formatSpread(spread(of(r, (s) => s.lat[k]?.p99)), 2)]),
      `${r.samples.reduce((a, s) => a + s.lat.reduce((b, l) => b + l.errors + l.requests - l.done, 0), 0)}+${r.samples.reduce((a, s) => a + s.conns.errors, 0)}`,
      formatSpread(spread(of(r, (s) => s.conns.perSecond)), 0),
      meshed(r.mode) ? formatSpread(spread(of(r, (s) => s.connCpuMs)), 2) : '-',
      r.mode !== 'direct' ? formatSpread(spread(of(r, (s) => s.cpuPer1k)), 3) : '-',
      meshed(r.mode) ? formatSpread(spread(of(r, (s) => s.rssMiB)), 0) : '-',
    ]),
  );
  const ratios = formatTable(
    [
      'PATH',
      'MESH',
      'VS',
      'BULK',
      `${o.streams} STREAMS`,
      'CONN/s',
      ...o.rates.flatMap((r) => [`+p50 ms @${r}/s (theirs)`, `+p99 ms (theirs)`]),
      `CPU/1k req @${o.rates[o.rates.length - 1]}/s`,
    ],
    ratioRows(rows, o.rates),
  );
  const procs = procTable(rows);
  const where = `${o.src?.name} -> ${o.dsts.map((d) => `${d.pod.name} (${d.path})`).join(', ')}`;
  const la = (l: number[]): string => l.map((x) => x.toFixed(2)).join(' ');
  process.stdout.write(
    `\nmesh benchmark (lab ${o.lab}, namespace ${NS}, no waypoint): ${where}; ${o.rounds} interleaved round(s), median (min–max); iperf3 ${o.seconds} s (1 and ${o.streams} streams); ` +
      `64 B req/resp at ${o.rates.join(', ')}/s on ${o.lo.conns} connections for ${o.lo.ms / 1000} s; new connections ${o.co.concurrency} at a time, ${o.co.size} B echo, ${o.co.ms / 1000} s; ` +
      `load average ${la(o.load.start)} at start, ${la(o.load.end)} at end\n${table}\n` +
      `the mesh against the other modes of this run (ratios: mesh / theirs, of the medians, with the per-round ratios' range; latency: what each adds over direct, medians)\n${ratios}` +
      (procs
        ? `\nper process, latency run at ${o.rates[o.rates.length - 1]}/s (CPU: utime+stime of every thread per 1,000 requests; per thread group: schedstat CPU, wake-ups = voluntary context switches per request, and the mean time a thread waited for a CPU each time it became runnable (schedstat run delay); medians over rounds)\n${procs}\n`
        : '') +
      (o.idle.length ? `\nthe node proxies idle after enrolling every pod, before any load (${settleText(o.idle)}):\n${idleTable(o.idle)}\n` : '') +
      (o.idleAfter.length ? `the node proxies idle again after the rounds (${settleText(o.idleAfter)}):\n${idleTable(o.idleAfter)}\n` : ''),
  );
  const bad = rows.filter((r) => r.samples.some((s) => !s.carried.ok || s.lat.some((l) => l.done < l.requests) || s.conns.done === 0));
  if (bad.length) {
    process.stderr.write(
      `bench mesh: ${bad.map((r) => `${r.path} ${MODE_NAME[r.mode]}`).join(', ')} did not measure what the row claims (see CARRIED and ERRORS)\n`,
    );
    return 1;
  }
  return 0;
}

const GROUPS: readonly ThreadGroup[] = ['engine', 'splice', 'main', 'other'];

/**
 * Each process of each row's tunnel: CPU per 1,000 requests, and for the node proxies each thread
 * group's CPU per 1,000 requests and wake-ups per request (stunnel's per-connection threads end
 * with their connections, so only its processes' totals are whole). Empty when nothing was measured.
 */
function procTable(rows: readonly Row[]): string {
  const out: string[][] = [];
  for (const r of rows) {
    const labels = [...new Set(r.samples.flatMap((s) => (s.procs ?? []).map((p) => p.label)))];
    for (const label of labels) {
      const figs = r.samples.map((s) => s.procs?.find((p) => p.label === label));
      const med = (f: (p: ProcFigure) => number, digits: number): string =>
        formatSpread(spread(figs.map((p) => (p ? f(p) : Number.NaN))), digits).split(' ')[0]!;
      const group = (g: ThreadGroup): string =>
        label.startsWith('node-proxy') && figs.some((p) => p && p.groups[g].threads > 0)
          ? `${med((p) => (p.groups[g].cpuS * 1000) / p.requests, 3)} / ${med((p) => p.groups[g].wakeups / p.requests, 2)} / ${med(
              (p) => (p.groups[g].wakeups ? (p.groups[g].waitS * 1e6) / (p.groups[g].wakeups + p.groups[g].involuntary) : Number.NaN),
              0,
            )}`
          : '-';
      out.push([r.path, MODE_NAME[r.mode], label, formatSpread(spread(figs.map((p) => p?.cpuPer1k ?? Number.NaN)), 3), ...GROUPS.map(group)]);
    }
  }
  if (!out.length) return '';
  return formatTable(
    ['PATH', 'MODE', 'PROCESS', 'CPU s/1k req', ...GROUPS.map((g) => `${g.toUpperCase()}: CPU s/1k / wake-ups per req / µs waited per run`)],
    out,
  );
}

/**
 * Per path: each mesh row (per engine) against direct and stunnel, and the native engine against the
 * node engine (throughput and conn/s ratios; added latency).
 */
function ratioRows(rows: readonly Row[], rates: readonly number[]): string[][] {
  const out: string[][] = [];
  for (const path of [...new Set(rows.map((r) => r.path))]) {
    const row = (m: Mode): Row | undefined => rows.find((r) => r.path === path && r.mode === m);
    const direct = row('direct');
    if (!direct) continue;
    for (const mesh of [row('mesh'), row('native')]) {
      if (!mesh) continue;
      for (const other of [direct, row('stunnel'), ...(mesh.mode === 'native' ? [row('mesh')] : [])]) {
        if (!other) continue;
        const x = (f: (s: Sample) => number): string => formatRatio(ratio(of(mesh, f), of(other, f)));
        const med = (r: Row, k: number, q: 'p50' | 'p99'): number => spread(of(r, (s) => s.lat[k]?.[q])).median;
        const added = (r: Row, k: number, q: 'p50' | 'p99'): number => med(r, k, q) - med(direct, k, q);
        out.push([
          path,
          ENGINE_OF[mesh.mode] ?? '',
          MODE_NAME[other.mode],
          x((s) => s.gbps),
          x((s) => s.gbpsN),
          x((s) => s.conns.perSecond),
          ...rates.flatMap((_r, k) =>
            (['p50', 'p99'] as const).map((q) => {
              const ms = (r: Row): string => (Number.isFinite(added(r, k, q)) ? added(r, k, q).toFixed(2) : '-');
              return `${ms(mesh)}${other === direct ? '' : ` (${ms(other)})`}`;
            }),
          ),
          other === direct ? '-' : x((s) => s.cpuPer1k ?? Number.NaN),
        ]);
      }
    }
  }
  return out;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench mesh: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
