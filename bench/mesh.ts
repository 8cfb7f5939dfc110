// Benchmark (not a test): what the mesh costs, against the same pods without it and against
// stunnel set up as the same two-hop mutual-TLS tunnel, cross-node and same-node, in one run.
//
//   npm run bench -- mesh [--lab nmbench] [--seconds 3] [--streams 8] [--rates 500,1000] [--latency-seconds 4]
//                         [--connections 16] [--conn-seconds 3] [--conn-concurrency 100] [--conn-size 16384]
//                         [--profile DIR]
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
//   proxy    both node proxies' CPU seconds (/proc/PID/stat utime+stime) per 1,000 requests of the
//            latency run at the last rate, and their RSS after it
//   carried  what the destination node proxy's access log says about the row's connections: through
//            the mesh every one must be logged with the expected protocol (HBONE across nodes, the
//            same-node path on one node) and the source's SPIFFE ID; without it none may be
// Modes: mesh (namespace default labelled dataplane-mode=ambient), direct (relabelled none: plain
// TCP), stunnel (not enrolled; stunnel client in the source pod, server in the destination pod,
// TLS 1.3 with client certificates from a throwaway CA). Exit 1 when a row was not carried as claimed.
// A second table gives the mesh's ratios to direct and to stunnel of the same run, and the latency
// it adds over direct next to what stunnel adds. iperf3, stunnel4 and openssl are installed with
// apt-get when missing.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ApiClient } from '../control/api/client';
import { labDown } from '../lab/down';
import { labConnection } from '../lab/mesh/connect';
import { spiffeId } from '../lab/mesh/demo';
import { launch } from '../lab/mesh/launch';
import { netnsGet } from '../native/netns-http';
import { accessEntriesSince, appMain, proxyLogMarks } from '../lab/mesh/traffic';
import { meshDown, meshUp } from '../lab/mesh/up';
import { runInLab } from '../lab/spawn';
import { LAB_NAME_RE, readLabProcesses, tryLoadLabState, type LabPod, type LabTopology } from '../lab/state';
import { sleep } from '../lab/sys';
import { formatTable } from '../common/table';
import { labUp } from '../lab/up';
import { carriedBy, carriedVerdict } from './support/carried';
import { CONNGEN, type ConnRate } from './support/conngen';
import { LOADGEN, type Latency } from './support/loadgen';
import { makeCerts, stunnelConf, type StunnelService } from './support/stunnel';
import { ensureTools } from './support/tools';
import { ADMIN_PORT, READY_PORT } from '../common/contracts/ports';
import { DATAPLANE_MODE_LABEL } from '../common/contracts/labels';

const IPERF_PORT = 5201;
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

async function latency(topo: LabTopology, from: string, host: string, port: number, o: { rate: number; ms: number; conns: number }): Promise<Latency> {
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
  const deadline = Date.now() + 20_000;
  for (;;) {
    const keys = new Set(await enrolled(topo));
    const wrong = want.filter((k) => keys.has(k) !== (mode === 'ambient'));
    // enrolled is not yet served: each workload's certificate and HBONE listener come after
    if (wrong.length === 0 && (await allReady(topo))) return;
    if (Date.now() > deadline)
      throw new Error(
        `after 20 s the node proxies still have ${wrong.join(', ')} ${mode === 'ambient' ? 'not enrolled' : 'enrolled'}; see their logs in /run/nodemesh/labs/${topo.lab}/logs`,
      );
    await sleep(200);
  }
}

interface Dest {
  path: 'cross-node' | 'same-node';
  pod: LabPod;
}

interface Row {
  path: string;
  mode: string;
  gbps: number;
  gbpsN: number;
  lat: Latency[];
  conns: ConnRate;
  carried: { ok: boolean; text: string };
  cpuPer1k?: number;
  rssMiB?: number;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      lab: { type: 'string' },
      seconds: { type: 'string' },
      streams: { type: 'string' },
      rates: { type: 'string' },
      'latency-seconds': { type: 'string' },
      connections: { type: 'string' },
      'conn-seconds': { type: 'string' },
      'conn-concurrency': { type: 'string' },
      'conn-size': { type: 'string' },
      profile: { type: 'string' },
      modes: { type: 'string' },
    },
  });
  const lab = values.lab ?? 'nmbench';
  if (!LAB_NAME_RE.test(lab)) throw new Error(`--lab ${lab}: a lab name is 1-8 of [a-z0-9]`);
  const seconds = Number(values.seconds ?? 3);
  const streams = Number(values.streams ?? 8);
  const rates = (values.rates ?? '500,1000').split(',').map(Number);
  const modes = new Set((values.modes ?? 'mesh,direct,stunnel').split(','));
  const badMode = [...modes].find((m) => !['mesh', 'direct', 'stunnel'].includes(m));
  if (badMode) throw new Error(`--modes ${values.modes}: each of mesh, direct, stunnel (comma-separated), not ${badMode}`);
  const lo = { ms: Number(values['latency-seconds'] ?? 4) * 1000, conns: Number(values.connections ?? 16) };
  const co = {
    ms: Number(values['conn-seconds'] ?? 3) * 1000,
    concurrency: Number(values['conn-concurrency'] ?? 100),
    size: Number(values['conn-size'] ?? 16384),
  };
  if (![seconds, streams, ...rates, lo.ms, lo.conns, co.ms, co.concurrency, co.size].every((v) => Number.isInteger(v) && v > 0)) {
    throw new Error(
      '--seconds, --streams, --rates (comma-separated), --latency-seconds, --connections, --conn-seconds, --conn-concurrency and --conn-size take positive integers',
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
  let src: LabPod | undefined;
  let dsts: Dest[] = [];
  try {
    say(`lab ${lab}: 2 nodes x 3 pods, mesh without the demo`);
    const { state: topo } = await labUp({ lab, nodes: 2, podsPerNode: 3 });
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
    const logs = join(tmp, 'logs');
    for (const d of dsts) {
      launch(topo, d.pod.name, 'bench-iperf3', ['iperf3', '-s', '-p', String(IPERF_PORT)], join(logs, `${d.pod.name}-iperf3.log`));
      launch(topo, d.pod.name, 'bench-echo', [process.execPath, appMain(), 'echo', '--port', String(ECHO_PORT)], join(logs, `${d.pod.name}-echo.log`));
    }
    await sleep(1000);

    type Want = { protocol: string; identity: string; expected: number } | 'no proxy';
    const measure = async (
      mode: string,
      target: (d: Dest, port: number, i: number) => [string, number],
      want: (d: Dest) => Want,
      logPorts: (d: Dest) => number[],
      withProxy: boolean,
    ): Promise<void> => {
      for (const [i, d] of dsts.entries()) {
        const marks = proxyLogMarks(topo);
        say(`${mode} ${d.path}: iperf3 ${seconds} s`);
        const [ih, ip] = target(d, IPERF_PORT, i);
        const gbps = await iperf(topo, source.name, ih, ip, seconds);
        say(`${mode} ${d.path}: iperf3 ${seconds} s, ${streams} streams`);
        const gbpsN = await iperf(topo, source.name, ih, ip, seconds, streams);
        const [lh, lp] = target(d, ECHO_PORT, i);
        const pids = proxyPids(lab);
        const lat: Latency[] = [];
        let before: ProcUse[] = [];
        for (const rate of rates) {
          say(`${mode} ${d.path}: ${rate} req/s for ${lo.ms / 1000} s on ${lo.conns} connections`);
          before = withProxy ? pids.map(procUse) : [];
          lat.push(await latency(topo, source.name, lh, lp, { ...lo, rate }));
        }
        const after = withProxy ? pids.map(procUse) : [];
        const cpu = after.reduce((a, u, k) => a + (u.cpu - (before[k]?.cpu ?? 0)), 0);
        const last = lat[lat.length - 1]!;
        // access-log lines come when connections close: give the proxies a moment (through the
        // mesh until every connection is logged; without it long enough for a stray one to show)
        const w = want(d);
        const ports = logPorts(d);
        const verdict = (): { ok: boolean; text: string } => carriedVerdict(carriedBy(accessEntriesSince(topo, marks), source.ip, d.pod.ip, ports), w);
        let carried = verdict();
        for (const until = Date.now() + (w === 'no proxy' ? 1000 : 3000); Date.now() < until && (w === 'no proxy' || !carried.ok); ) {
          await sleep(100);
          carried = verdict();
        }
        say(`${mode} ${d.path}: new connections for ${co.ms / 1000} s, ${co.concurrency} at a time, ${co.size} B echo each`);
        const conns = await connRate(topo, source.name, lh, lp, co);
        rows.push({
          path: d.path,
          mode,
          gbps,
          gbpsN,
          lat,
          conns,
          carried,
          cpuPer1k: withProxy && last.done ? (cpu * 1000) / last.done : undefined,
          rssMiB: withProxy ? after.reduce((a, u) => a + u.rssMiB, 0) : undefined,
        });
      }
    };

    const c = labConnection(lab);
    const api = new ApiClient({ server: c.server, token: c.token, createConnection: c.createConnection, ca: c.ca });
    const pods = [source, ...dsts.map((d) => d.pod)];
    say(`enrolling namespace ${NS} (dataplane-mode=ambient)`);
    await setMode(topo, api, 'ambient', pods);
    // iperf3: a control and a data connection; the load generator: CONNECTIONS
    const meshWant = (d: Dest): Want => ({ protocol: d.path === 'cross-node' ? 'HBONE' : 'same-node', identity: SOURCE_ID, expected: 2 + lo.conns });
    if (modes.has('mesh'))
      await measure(
        'mesh',
        (d, port) => [d.pod.ip, port],
        meshWant,
        () => [IPERF_PORT, ECHO_PORT],
        true,
      );
    if (!modes.has('direct') && !modes.has('stunnel')) return finish(rows, rates, streams, seconds, lo, co, src, dsts, lab);

    say(`unenrolling namespace ${NS} (dataplane-mode=none) for the direct and stunnel runs`);
    await setMode(topo, api, 'none', pods);
    if (modes.has('direct'))
      await measure(
        'direct (no mesh)',
        (d, port) => [d.pod.ip, port],
        () => 'no proxy',
        () => [IPERF_PORT, ECHO_PORT],
        false,
      );

    if (!modes.has('stunnel')) return finish(rows, rates, streams, seconds, lo, co, src, dsts, lab);
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
    await sleep(1000);
    // a proxy would see the connections to the stunnel server's ports
    const stunnelPorts = (): number[] => [IPERF_PORT + 10_000, ECHO_PORT + 10_000];
    await measure(
      'stunnel (mTLS)',
      (_d, port, i) => ['127.0.0.1', 20_000 + i * 10 + (port === IPERF_PORT ? 1 : 2)],
      () => 'no proxy',
      stunnelPorts,
      false,
    );
  } finally {
    say(`removing lab ${lab}`);
    await finalDown();
  }
  return finish(rows, rates, streams, seconds, lo, co, src, dsts, lab);
}

/** Prints the tables; 1 when a row did not measure what it claims. */
function finish(
  rows: readonly Row[],
  rates: readonly number[],
  streams: number,
  seconds: number,
  lo: { ms: number; conns: number },
  co: { ms: number; concurrency: number; size: number },
  src: LabPod | undefined,
  dsts: readonly Dest[],
  lab: string,
): number {
  const latHeads = rates.flatMap((r) => [`p50 ms @${r}/s`, 'p99 ms']);
  const table = formatTable(
    ['PATH', 'MODE', 'CARRIED', 'BULK Gbit/s', `${streams} STREAMS Gbit/s`, ...latHeads, 'ERRORS', 'CONN/s', 'PROXY CPU s/1k req', 'PROXY RSS MiB (2 nodes)'],
    rows.map((r) => [
      r.path,
      r.mode,
      r.carried.text,
      r.gbps.toFixed(2),
      r.gbpsN.toFixed(2),
      ...r.lat.flatMap((l) => [l.p50.toFixed(2), l.p99.toFixed(2)]),
      `${r.lat.reduce((a, l) => a + l.errors + l.requests - l.done, 0)}+${r.conns.errors}`,
      r.conns.perSecond.toFixed(0),
      r.cpuPer1k !== undefined ? r.cpuPer1k.toFixed(3) : '-',
      r.rssMiB !== undefined ? r.rssMiB.toFixed(0) : '-',
    ]),
  );
  const ratios = formatTable(
    ['PATH', 'VS', 'BULK', `${streams} STREAMS`, 'CONN/s', ...rates.flatMap((r) => [`+p50 ms @${r}/s (theirs)`, `+p99 ms (theirs)`])],
    ratioRows(rows, rates),
  );
  const where = `${src?.name} -> ${dsts.map((d) => `${d.pod.name} (${d.path})`).join(', ')}`;
  process.stdout.write(
    `\nmesh benchmark (lab ${lab}, namespace ${NS}, no waypoint): ${where}; iperf3 ${seconds} s (1 and ${streams} streams); 64 B req/resp at ${rates.join(', ')}/s on ${lo.conns} connections for ${lo.ms / 1000} s; ` +
      `new connections ${co.concurrency} at a time, ${co.size} B echo, ${co.ms / 1000} s\n${table}\nthe mesh against the other modes of this run (ratios: mesh / theirs; latency: what each adds over direct)\n${ratios}`,
  );
  const bad = rows.filter((r) => !r.carried.ok || r.lat.some((l) => l.done < l.requests) || r.conns.done === 0);
  if (bad.length) {
    process.stderr.write(`bench mesh: ${bad.map((r) => `${r.path} ${r.mode}`).join(', ')} did not measure what the row claims (see CARRIED and ERRORS)\n`);
    return 1;
  }
  return 0;
}

/** Per path: the mesh row against direct and stunnel (throughput and conn/s ratios; added latency). */
function ratioRows(rows: readonly Row[], rates: readonly number[]): string[][] {
  const out: string[][] = [];
  for (const path of [...new Set(rows.map((r) => r.path))]) {
    const of = (m: string): Row | undefined => rows.find((r) => r.path === path && r.mode.startsWith(m));
    const mesh = of('mesh');
    const direct = of('direct');
    if (!mesh || !direct) continue;
    for (const other of [direct, of('stunnel')]) {
      if (!other) continue;
      const x = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(2)}x` : '-');
      const added = (r: Row, k: number, q: 'p50' | 'p99'): number => r.lat[k]![q] - direct.lat[k]![q];
      out.push([
        path,
        other.mode,
        x(mesh.gbps, other.gbps),
        x(mesh.gbpsN, other.gbpsN),
        x(mesh.conns.perSecond, other.conns.perSecond),
        ...rates.flatMap((_r, k) =>
          (['p50', 'p99'] as const).map((q) => `${added(mesh, k, q).toFixed(2)}${other === direct ? '' : ` (${added(other, k, q).toFixed(2)})`}`),
        ),
      ]);
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
