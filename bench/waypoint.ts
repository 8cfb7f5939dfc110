// Benchmark (not a test): the waypoint as an L7 hop on loopback against nginx and haproxy
// configured as the same hop, in one run (ratios only: the machine is shared).
//
//   npm run bench -- waypoint [--shapes h1,h2c,grpc,big,max,scale] [--rate 2000] [--seconds 8]
//                             [--rounds 3] [--profile DIR] [--baseline OTHER/dist/cli/main.js]
//                             [--warm-up 3]
//
// --baseline runs a second waypoint from another build (e.g. main before a change) in the same
// rounds, as the proxy "baseline": its "wp/this" columns are this build's figures over that one's.
//
// The machine may be shared: every shape runs --rounds rounds, each round measuring every proxy
// once (the order rotated from round to round), and reports the median with the spread [min-max]
// and the waypoint's ratios to nginx and haproxy as the median of the per-round ratios; the load
// average is printed with every measurement.
//
// The hop, identical on the three proxies: a request with `x-bench: yes` is split 90/10 between
// backends v1 and v2 (weighted clusters / split_clients / weighted servers); any other request
// goes to v1; `/bench.Echo/…` (gRPC) goes to the HTTP/2 backends with the same header match and
// split. Backends are nginx (64-byte answers, a 1 MiB file, a gRPC-shaped answer with a
// grpc-status trailer), so no Node runs on the far side. One process per proxy: nginx one worker,
// haproxy one thread, the waypoint one process (`nodemesh waypoint run`, configured over delta
// ADS by an in-process xDS server); `scale` also runs the waypoint with `--workers 2`.
//
// Shapes (h2load for all, its per-request log for latency):
// - h1:    HTTP/1.1 keep-alive, 4 connections, open loop at --rate req/s: p50/p99, the proxy's
//          CPU seconds per 1,000 requests (utime+stime of its processes), RSS;
// - h2c:   HTTP/2 prior knowledge, 4 connections x 25 = 100 concurrent streams, closed loop;
// - grpc:  gRPC unary (POST application/grpc, 5-byte framed message) over h2c, 100 streams,
//          HTTP/2 upstream; closed loop;
// - big:   1 MiB responses over HTTP/1.1, 4 connections, closed loop (MiB/s, CPU-s per GiB);
// - max:   the highest paced rate at which p99 < 10 ms (and >= 97% of the rate is served, all
//          2xx), HTTP/1.1 (32 connections) and h2c (4 x 25 streams): each connection sends on its
//          own clock (h2load --rps per connection), the connections started 1 ms apart — which does
//          not keep their requests apart: h2load's timers fire together, and (measured with the
//          knee shape's logs, 2026-12-06) at R req/s all R/100 requests of the 4 h2c connections
//          arrive within ~0.1 ms, every 10 ms. Not smooth within a connection either: h2load's
//          --rps timer fires every max(10 ms, 1/rps) and sends all the requests then due (measured
//          with h2load 1.52 at 500/s per connection: 86 % of the gaps between requests under
//          50 µs, bursts every ~10 ms), so above 100 req/s per connection a connection sends
//          rate/100 requests together (HTTP/1.1: one by one, each when the previous is answered) and
//          the search finds roughly the rate at which a proxy serves each 10 ms burst within 10 ms,
//          close to its closed-loop capacity; the same for all three proxies; bounded search,
//          doubling from 1,000 then bisecting, 3 s per step (--max-protos h1 searches HTTP/1.1 only);
// - scale: closed-loop HTTP/1.1 saturation (32 connections) of the waypoint with 1 and 2 workers,
//          and of nginx with 1 and 2 worker processes, with the cores each process used, the work
//          per core used ("x2/x1 per core": 2 x it is what 2 workers on cores of their own would
//          serve over 1) and the machine's ceiling for "2 over 1" (the cores are shared with h2load
//          and the backends); then ("quota x1", "quota x2") the waypoint in a CPU cgroup capped at
//          N x --scale-quota cores (default 0.4) for N workers, so that each worker has the same CPU
//          and the quota, not the machine, bounds the rate: "x2/x1 rate" of those rows is 2 workers
//          over 1 at equal CPU per worker, measured (throttled % near 100 and idle cores above 0
//          say the quota bound it, not h2load);
// - knee (not in the default set): each proxy at each of --knee-rates (paced as in max; h2c, or
//          --knee-protos h1,h2c): p50/p90/p99/max and CPU, to see where and why p99 passes 10 ms;
// - steady (not in the default set): RSS and CPU per request under a fixed rate for
//          --steady-seconds (default 180), one waypoint per set of node flags in --flag-sets
//          ("FLAGS|FLAGS|none", default: the waypoint's own flags and none), all side by side;
// - pair, pair-h2c (not in the default set; need --baseline): the h1 (or h2c) load on this build
//          and on the baseline at the same time, each from its own h2load, so that both see the
//          same moments of a loaded machine (alternated rounds are seconds apart); per-round
//          ratios of CPU per request;
// - instr (alone; not in the default set): the waypoints (and --baseline) run under valgrind's
//          callgrind, and the bench counts their user-space instructions per request for HTTP/1.1
//          and h2c closed loop (NODEMESH_BENCH_INSTR_WARM_UP requests first, default 20000: after
//          6000 a round still cost 1.3-1.7x the later ones; then --rounds x
//          NODEMESH_BENCH_INSTR_REQUESTS, default 4000): a comparison of builds that a
//          busy machine does not disturb (use --proxies waypoint --warm-up 0);
//          NODEMESH_BENCH_INSTR_PROTOS=h1 counts HTTP/1.1 only.
// Missing tools (nginx, haproxy, h2load) are installed with apt-get (Debian/Ubuntu, as root).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchParse } from './support/args';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { Cluster, Cluster_DiscoveryType, Cluster_LbPolicy } from '../api/gen/envoy/config/cluster/v3/cluster';
import { ClusterLoadAssignment } from '../api/gen/envoy/config/endpoint/v3/endpoint';
import { Listener } from '../api/gen/envoy/config/listener/v3/listener';
import { RouteConfiguration } from '../api/gen/envoy/config/route/v3/route';
import { Router } from '../api/gen/envoy/extensions/filters/http/router/v3/router';
import { HttpConnectionManager } from '../api/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager';
import { createLogger } from '../common/log';
import { SharedCache } from '../control/xds/cache';
import { DeltaAdsServer } from '../control/xds/delta-server';
import { xdsMetrics } from '../control/xds/metrics';
import { xdsResource } from '../control/xds/resource';
import { adsImplementation, adsServiceDefinition } from '../control/xds/service';
import { pack } from '../waypoint/config/typed';
import { WAYPOINT_ENV, WAYPOINT_NODE_FLAGS } from '../waypoint/process-flags';
import { TYPE } from '../waypoint/xds/resources';

const { values: args } = benchParse({
  options: {
    shapes: { type: 'string', default: 'h1,h2c,grpc,big,max,scale' },
    rate: { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '8' },
    profile: { type: 'string' },
    proxies: { type: 'string', default: 'waypoint,nginx,haproxy' },
    nice: { type: 'string', default: '-10' },
    rounds: { type: 'string', default: '3' },
    baseline: { type: 'string' },
    'steady-seconds': { type: 'string', default: '180' },
    'steady-rate': { type: 'string', default: '1000' },
    'warm-up': { type: 'string', default: '3' },
    'flag-sets': { type: 'string' },
    'knee-rates': { type: 'string', default: '1000,2000,4000,8000' },
    'knee-protos': { type: 'string', default: 'h2c' },
    'max-protos': { type: 'string', default: 'h1,h2c' },
    'scale-quota': { type: 'string', default: '0.4' },
  },
});
const SHAPES = new Set(args.shapes!.split(','));
const RATE = Number(args.rate);
const SECONDS = Number(args.seconds);
const PROXIES = [...args.proxies!.split(','), ...(args.baseline ? ['baseline'] : [])] as ProxyName[];
const ROUNDS = Math.max(1, Number(args.rounds));
const CLK_TCK = 100;
// The machine is shared: the proxies, backends and load generator run at a raised priority (as
// root) so that other work on the machine disturbs the latency figures less; the same for all.
const NICE = process.getuid?.() === 0 ? Number(args.nice) : 0;
/** `cmd args` under `nice -n NICE` when that applies. */
function niced(cmd: string, a: string[]): [string, string[]] {
  return NICE !== 0 ? ['nice', ['-n', String(NICE), cmd, ...a]] : [cmd, a];
}
const P99_LIMIT_MS = 10;
/** `instr`: the waypoints run under valgrind's callgrind and the bench counts their instructions per request. */
const INSTR = SHAPES.has('instr');
if (INSTR && SHAPES.size > 1) throw new Error('--shapes instr runs alone (the waypoints run under valgrind)');
type ProxyName = 'waypoint' | 'baseline' | 'nginx' | 'haproxy';

function ensureTools(): void {
  const need: Record<string, string> = { nginx: 'nginx', haproxy: 'haproxy', h2load: 'nghttp2-client' };
  const missing = Object.entries(need).filter(([tool]) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
  if (!missing.length) return;
  const pkgs = missing.map(([, p]) => p);
  if (spawnSync('sh', ['-c', 'command -v apt-get']).status !== 0 || process.getuid?.() !== 0) {
    process.stderr.write(
      `bench/waypoint: needs ${missing.map(([t]) => t).join(', ')}: install ${pkgs.join(' ')} (as root: apt-get install -y ${pkgs.join(' ')})\n`,
    );
    process.exit(2);
  }
  process.stdout.write(`bench/waypoint: installing ${pkgs.join(' ')}\n`);
  const r = spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', ...pkgs], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (r.status !== 0) {
    process.stderr.write(`bench/waypoint: apt-get install ${pkgs.join(' ')} failed\n`);
    process.exit(2);
  }
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
    } catch {
      // gone
    }
  }
  return ticks / CLK_TCK;
}

/** CPU seconds the whole machine spent idle (idle + iowait of /proc/stat), all cores together. */
function machineIdleSeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  return (Number(f[4]) + Number(f[5])) / CLK_TCK;
}

/** A CPU cgroup that caps a process tree at `cores` CPUs (CFS quota over 10 ms periods). */
interface CpuLimit {
  /** Write a pid here to move it (and its future children) into the cgroup. */
  readonly procs: string;
  /** CFS periods so far, and those in which the tree was throttled (it wanted more than its quota). */
  periods(): { all: number; throttled: number };
  remove(): void;
}

/**
 * A cgroup with a CPU quota, under the cgroup v1 cpu controller or cgroup v2 (where the root enables
 * `cpu` for its children); undefined (with the reason on stderr) when neither can be made here.
 */
function cpuLimit(name: string, cores: number): CpuLimit | undefined {
  const periodUs = 10_000;
  const quotaUs = Math.max(1000, Math.round(cores * periodUs));
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '));
  const v1 = mounts.find((m) => m[2] === 'cgroup' && (m[3] ?? '').split(',').includes('cpu'))?.[1];
  const v2 = mounts.find((m) => m[2] === 'cgroup2')?.[1];
  const stat = (dir: string, a: string, t: string) => (): { all: number; throttled: number } => {
    const text = readFileSync(join(dir, 'cpu.stat'), 'utf8');
    return { all: Number(new RegExp(`^${a} (\\d+)`, 'm').exec(text)?.[1] ?? 0), throttled: Number(new RegExp(`^${t} (\\d+)`, 'm').exec(text)?.[1] ?? 0) };
  };
  try {
    if (v1) {
      const dir = join(v1, `nm-bench-${name}-${process.pid}`);
      mkdirSync(dir);
      writeFileSync(join(dir, 'cpu.cfs_period_us'), String(periodUs));
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quotaUs));
      return { procs: join(dir, 'cgroup.procs'), periods: stat(dir, 'nr_periods', 'nr_throttled'), remove: () => rmdirQuietly(dir) };
    }
    if (v2 && readFileSync(join(v2, 'cgroup.subtree_control'), 'utf8').split(/\s+/).includes('cpu')) {
      const dir = join(v2, `nm-bench-${name}-${process.pid}`);
      mkdirSync(dir);
      writeFileSync(join(dir, 'cpu.max'), `${quotaUs} ${periodUs}`);
      return { procs: join(dir, 'cgroup.procs'), periods: stat(dir, 'nr_periods', 'nr_throttled'), remove: () => rmdirQuietly(dir) };
    }
    process.stderr.write('bench/waypoint: no cgroup with a cpu controller here (v1 cpu, or v2 with +cpu at the root): the quota rows of scale are left out\n');
  } catch (err) {
    process.stderr.write(
      `bench/waypoint: cannot make a CPU cgroup (${err instanceof Error ? err.message : String(err)}; needs root): the quota rows of scale are left out\n`,
    );
  }
  return undefined;
}

function rmdirQuietly(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // still has a process (it is exiting) or already gone
  }
}

function rssMiB(pids: number[]): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      kb += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      // gone
    }
  }
  return kb / 1024;
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitHttp(port: number, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${port}/`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing answered 200 on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await sleep(100);
  }
}

interface LoadResult {
  readonly sent: number;
  readonly ok: number;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly p90: number;
  readonly max: number;
  readonly seconds: number;
  /** Responses other than 2xx by status ('-1': no response), e.g. "3 x 503". */
  readonly failed: string;
}

interface LoadSpec {
  readonly port: number;
  readonly h2: boolean;
  readonly conns: number;
  readonly streams: number;
  /** Open loop at this total rate; undefined: closed loop. */
  readonly rate?: number;
  /**
   * With `rate`: paced — each connection sends at rate/conns per second on its own clock (h2load
   * starts them 1 ms apart, --rps per connection), so the connections' requests do not all come in
   * the same tick; within a connection h2load sends what is due every 10 ms (see `max` above); a
   * connection whose previous response has not come back sends when it does.
   */
  readonly paced?: boolean;
  readonly seconds: number;
  readonly path?: string;
  readonly grpc?: boolean;
}

// Asynchronous on purpose: this process also hosts the waypoint's xDS server, and a blocked event
// loop here would drop the waypoint's xDS stream mid-benchmark.
async function load(s: LoadSpec, dir: string): Promise<LoadResult> {
  const log = join(dir, `h2load-${s.port}-${Date.now()}.log`);
  const a = ['-c', String(s.conns), '-m', String(s.streams), `--log-file=${log}`, '-H', 'x-bench: yes'];
  if (s.paced && s.rate !== undefined) {
    // -r and -D exclude each other: a request count instead, and the connections started over one
    // interval of a connection's clock (conns / rate s), in 1 ms steps (h2load's finest).
    const intervalMs = (1000 * s.conns) / s.rate;
    const perMs = Math.max(1, Math.ceil(s.conns / Math.max(1, Math.floor(intervalMs))));
    const n = Math.max(s.conns, Math.round(s.rate * s.seconds));
    a.push('-r', String(perMs), '--rate-period=1ms', '-n', String(n - (n % s.conns)), '--rps', (s.rate / s.conns).toFixed(3));
  } else {
    a.push('-D', String(s.seconds), '--warm-up-time=1');
    if (s.rate !== undefined) a.push('--rps', String(Math.max(1, Math.round(s.rate / s.conns))));
  }
  if (!s.h2) a.push('--h1');
  if (s.grpc) a.push('-d', join(dir, 'grpc-request.bin'), '-H', 'content-type: application/grpc', '-H', 'te: trailers');
  a.push(`http://127.0.0.1:${s.port}${s.path ?? '/'}`);
  // A paced run sends a fixed count: a proxy slower than the rate stretches it, up to twice as long.
  const limitS = s.paced ? 2 * s.seconds + 5 : s.seconds + 30;
  const h2load = spawn(...niced('h2load', a), { stdio: ['ignore', 'pipe', 'pipe'], timeout: limitS * 1000 });
  let output = '';
  h2load.stdout.on('data', (d: Buffer) => (output += d.toString()));
  h2load.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const status = await new Promise<number | null>((resolve, reject) => h2load.on('error', reject).on('close', resolve));
  if (status === null && s.paced) {
    rmSync(log, { force: true });
    return { sent: 0, ok: 0, rps: 0, p50: NaN, p90: NaN, p99: Infinity, max: Infinity, seconds: s.seconds, failed: `did not finish within ${limitS} s` };
  }
  if (status !== 0) throw new Error(`h2load ${a.join(' ')} failed: ${output}`);
  let text = '';
  try {
    text = readFileSync(log, 'utf8');
  } catch {
    // no request finished
  }
  // h2load's per-request log (start µs, status, duration µs) kept for diagnosis: NODEMESH_BENCH_KEEP_LOGS=DIR.
  if (process.env.NODEMESH_BENCH_KEEP_LOGS)
    writeFileSync(join(process.env.NODEMESH_BENCH_KEEP_LOGS, `h2load-${s.port}-${s.paced ? 'paced-' : ''}${s.rate ?? 'closed'}-${Date.now()}.log`), text);
  rmSync(log, { force: true });
  let lines = text.trim().split('\n').filter(Boolean);
  // Paced runs have no warm-up: leave out each connection's first request (it waited for the connect).
  if (s.paced) lines = lines.sort((x, y) => Number(x.split('\t')[0]) - Number(y.split('\t')[0])).slice(s.conns);
  const lat: number[] = [];
  let ok = 0;
  const bad = new Map<string, number>();
  let first = Infinity;
  let last = -Infinity;
  for (const l of lines.slice()) {
    const [start, st, us] = l.split('\t');
    if (st === '0' || st === '-1') {
      // No response (h2load logs a request still in flight when the time is up with status 0):
      // shown in the round's line, not counted in the rate or the latencies.
      bad.set(`${st} (no response)`, (bad.get(`${st} (no response)`) ?? 0) + 1);
      lines.splice(lines.indexOf(l), 1);
      continue;
    }
    if (st !== undefined && st.startsWith('2')) ok++;
    else bad.set(String(st), (bad.get(String(st)) ?? 0) + 1);
    lat.push(Number(us) / 1000);
    const t = Number(start) + Number(us);
    if (t < first) first = t;
    if (t > last) last = t;
  }
  // The rate over the window in which requests completed (the log starts after the warm-up).
  const span = lines.length > 1 ? (last - first) / 1e6 : s.seconds;
  lat.sort((x, y) => x - y);
  const q = (p: number): number => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
  const failed = [...bad].map(([st, n]) => `${n} x ${st}`).join(', ');
  return {
    sent: lines.length,
    ok,
    rps: (lines.length - 1) / Math.max(span, 0.001),
    p50: q(0.5),
    p90: q(0.9),
    p99: q(0.99),
    max: lat[lat.length - 1] ?? NaN,
    seconds: s.seconds,
    failed,
  };
}

interface Measured extends LoadResult {
  /** CPU seconds of the proxy's processes, of the backends (nginx), of the load generator (h2load). */
  readonly cpu: number;
  readonly backendCpu: number;
  readonly loadgenCpu: number;
  readonly rss: number;
  /** Wall seconds the CPU figures cover (the load generator's whole run, warm-up included). */
  readonly elapsed: number;
  /** The proxy's CPU seconds per request: its CPU per second of the run over the requests per second served. */
  readonly cpuPerRequest: number;
}

/** The 1, 5 and 15 minute load averages, as uptime prints them. */
function loadavg(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

/** Median [min-max] of a column's rounds. */
function spread(v: number[], key: string): string {
  const s = v.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return '-';
  const med = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  const d = key === 'x3' ? 3 : key === 'x' || key === 'ok%' ? 2 : key.startsWith('CPU') ? 4 : key === 'p50' || key === 'p99' ? 2 : med < 10 ? 2 : 0;
  const f = (n: number): string => (key === 'ok%' ? n.toFixed(1) : n.toFixed(d));
  return s.length === 1 ? f(med) : `${f(med)} [${f(s[0]!)}-${f(s[s.length - 1]!)}]`;
}

interface Proxy {
  readonly name: string;
  readonly h1Port: number;
  readonly h2Port: number;
  pids(): number[];
}

function nginxConfig(dir: string, b: Backends, h1: number, h2: number, workers = 1, name = 'nginx-proxy'): string {
  const temp = `client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;`;
  return `worker_processes ${workers};
pid ${dir}/${name}.pid;
error_log ${dir}/${name}-error.log warn;
daemon on;
events { worker_connections 4096; }
http {
  access_log off; ${temp}
  keepalive_requests 1000000;
  upstream v1 { server 127.0.0.1:${b.v1}; keepalive 64; }
  upstream v2 { server 127.0.0.1:${b.v2}; keepalive 64; }
  upstream g1 { server 127.0.0.1:${b.g1}; keepalive 64; }
  upstream g2 { server 127.0.0.1:${b.g2}; keepalive 64; }
  split_clients "\${request_id}" $split { 90% 1; * 2; }
  map $http_x_bench $pick { yes $split; default 1; }
  server {
    listen 127.0.0.1:${h1}; listen 127.0.0.1:${h2} http2;
    http2_max_concurrent_streams 1000;
    location /bench.Echo/ { grpc_pass grpc://g$pick; }
    location / { proxy_pass http://v$pick; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; proxy_buffering on; }
  }
}
`;
}

function haproxyConfig(dir: string, b: Backends, h1: number, h2: number): string {
  return `global
  nbthread 1
  maxconn 4000
  pidfile ${dir}/haproxy.pid
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend hop
  bind 127.0.0.1:${h1}
  bind 127.0.0.1:${h2} proto h2
  acl bench req.hdr(x-bench) -m str yes
  acl grpc path_beg /bench.Echo/
  use_backend gsplit if grpc bench
  use_backend g1 if grpc
  use_backend split if bench
  default_backend v1
backend split
  balance random
  server v1 127.0.0.1:${b.v1} weight 90
  server v2 127.0.0.1:${b.v2} weight 10
backend v1
  server v1 127.0.0.1:${b.v1}
backend gsplit
  balance random
  server g1 127.0.0.1:${b.g1} weight 90 proto h2
  server g2 127.0.0.1:${b.g2} weight 10 proto h2
backend g1
  server g1 127.0.0.1:${b.g1} proto h2
`;
}

interface Backends {
  v1: number;
  v2: number;
  g1: number;
  g2: number;
}

function backendConfig(dir: string, b: Backends): string {
  const temp = `client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;`;
  const h1 = (port: number): string =>
    `server { listen 127.0.0.1:${port}; location = /big { root ${dir}/www; } location / { default_type text/plain; return 200 "0123456789012345678901234567890123456789012345678901234567890123"; } }`;
  const h2 = (port: number): string =>
    `server { listen 127.0.0.1:${port} http2; http2_max_concurrent_streams 1000; location / { default_type application/grpc; add_trailer grpc-status 0; return 200 "hello"; } }`;
  return `worker_processes 1;
pid ${dir}/nginx-backend.pid;
error_log ${dir}/nginx-backend-error.log warn;
daemon on;
events { worker_connections 4096; }
http {
  access_log off; ${temp}
  keepalive_requests 1000000;
  # Keep-Alive: timeout=75 on every response, as node:http and many servers announce theirs.
  keepalive_timeout 75s 75s;
  ${h1(b.v1)}
  ${h1(b.v2)}
  ${h2(b.g1)}
  ${h2(b.g2)}
}
`;
}

/** The waypoint's xDS resources for the same hop. */
function waypointConfig(cache: SharedCache, port: number, b: Backends): void {
  const ads = { configSourceSpecifier: { $case: 'ads' as const, value: {} } };
  const hcm = HttpConnectionManager.fromPartial({
    statPrefix: 'bench',
    routeSpecifier: { $case: 'rds', value: { routeConfigName: 'bench', configSource: ads } },
    httpFilters: [{ name: 'envoy.filters.http.router', configType: { $case: 'typedConfig', value: pack(Router, Router.fromPartial({})) } }],
  });
  const listener = Listener.fromPartial({
    name: 'bench',
    address: { address: { $case: 'socketAddress', value: { address: '127.0.0.1', portSpecifier: { $case: 'portValue', value: port } } } },
    filterChains: [
      { filters: [{ name: 'envoy.filters.network.http_connection_manager', configType: { $case: 'typedConfig', value: pack(HttpConnectionManager, hcm) } }] },
    ],
  });
  const clusters: Array<[string, number, boolean]> = [
    ['v1', b.v1, false],
    ['v2', b.v2, false],
    ['g1', b.g1, true],
    ['g2', b.g2, true],
  ];
  const benchHeader = [{ name: 'x-bench', headerMatchSpecifier: { $case: 'exactMatch' as const, value: 'yes' } }];
  const split = (a: string, c: string) => ({
    $case: 'route' as const,
    value: {
      clusterSpecifier: {
        $case: 'weightedClusters' as const,
        value: {
          clusters: [
            { name: a, weight: 90 },
            { name: c, weight: 10 },
          ],
        },
      },
      timeout: { seconds: 0, nanos: 0 },
    },
  });
  const one = (a: string) => ({
    $case: 'route' as const,
    value: { clusterSpecifier: { $case: 'cluster' as const, value: a }, timeout: { seconds: 0, nanos: 0 } },
  });
  const routes = RouteConfiguration.fromPartial({
    name: 'bench',
    virtualHosts: [
      {
        name: 'all',
        domains: ['*'],
        routes: [
          { match: { pathSpecifier: { $case: 'prefix', value: '/bench.Echo/' }, headers: benchHeader }, action: split('g1', 'g2') },
          { match: { pathSpecifier: { $case: 'prefix', value: '/bench.Echo/' } }, action: one('g1') },
          { match: { pathSpecifier: { $case: 'prefix', value: '/' }, headers: benchHeader }, action: split('v1', 'v2') },
          { match: { pathSpecifier: { $case: 'prefix', value: '/' } }, action: one('v1') },
        ],
      },
    ],
  });
  cache.update(
    TYPE.cluster,
    clusters.map(([name, , h2]) =>
      xdsResource(
        TYPE.cluster,
        name,
        Cluster.encode(
          Cluster.fromPartial({
            name,
            clusterDiscoveryType: { $case: 'type', value: Cluster_DiscoveryType.EDS },
            edsClusterConfig: { serviceName: name, edsConfig: ads },
            lbPolicy: Cluster_LbPolicy.ROUND_ROBIN,
            // Under callgrind the waypoint runs ~50x slower and its event loop turns seconds apart:
            // Envoy's 5 s would time out connects that completed long before.
            ...(INSTR ? { connectTimeout: { seconds: 120, nanos: 0 } } : {}),
            ...(h2 ? { http2ProtocolOptions: {} } : {}),
          }),
        ).finish(),
      ),
    ),
  );
  cache.update(
    TYPE.endpoint,
    clusters.map(([name, p]) =>
      xdsResource(
        TYPE.endpoint,
        name,
        ClusterLoadAssignment.encode(
          ClusterLoadAssignment.fromPartial({
            clusterName: name,
            endpoints: [
              {
                lbEndpoints: [
                  {
                    hostIdentifier: {
                      $case: 'endpoint',
                      value: {
                        address: { address: { $case: 'socketAddress', value: { address: '127.0.0.1', portSpecifier: { $case: 'portValue', value: p } } } },
                      },
                    },
                  },
                ],
              },
            ],
          }),
        ).finish(),
      ),
    ),
  );
  cache.update(TYPE.listener, [xdsResource(TYPE.listener, 'bench', Listener.encode(listener).finish())]);
  cache.update(TYPE.route, [xdsResource(TYPE.route, 'bench', RouteConfiguration.encode(routes).finish())]);
}

interface Row {
  shape: string;
  proxy: string;
  cols: Record<string, string>;
}

const fmt = (n: number | undefined, d = 2): string => (n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(d));

async function main(): Promise<void> {
  ensureTools();
  const dir = mkdtempSync(join(tmpdir(), 'nm-bench-waypoint-'));
  chmodSync(dir, 0o755); // nginx workers (an unprivileged user) read the 1 MiB file below it
  mkdirSync(join(dir, 'www'));
  writeFileSync(join(dir, 'www', 'big'), Buffer.alloc(1024 * 1024, 97));
  // A gRPC unary request: uncompressed flag, 4-byte length, a 16-byte message.
  const msg = Buffer.alloc(16, 7);
  const framed = Buffer.alloc(5 + msg.length);
  framed.writeUInt32BE(msg.length, 1);
  msg.copy(framed, 5);
  writeFileSync(join(dir, 'grpc-request.bin'), framed);
  const procs: ChildProcess[] = [];
  const pidFiles: string[] = [];
  const xdsServers: grpc.Server[] = [];
  const adsServers: DeltaAdsServer[] = [];
  const rows: Row[] = [];
  const out = (s: string): boolean => process.stdout.write(s);
  try {
    const b: Backends = { v1: await freePort(), v2: await freePort(), g1: await freePort(), g2: await freePort() };
    writeFileSync(join(dir, 'backend.conf'), backendConfig(dir, b));
    const startNginx = (conf: string, pidFile: string): void => {
      const r = spawnSync(...niced('nginx', ['-p', dir, '-c', join(dir, conf)]), { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`nginx (${conf}) did not start: ${r.stderr}`);
      pidFiles.push(pidFile);
    };
    startNginx('backend.conf', join(dir, 'nginx-backend.pid'));
    await waitHttp(b.v1);
    await waitHttp(b.v2);

    const proxies = new Map<ProxyName, Proxy>();
    if (PROXIES.includes('nginx')) {
      const h1 = await freePort();
      const h2 = await freePort();
      writeFileSync(join(dir, 'proxy.conf'), nginxConfig(dir, b, h1, h2));
      startNginx('proxy.conf', join(dir, 'nginx-proxy.pid'));
      await waitHttp(h1);
      const master = Number(readFileSync(join(dir, 'nginx-proxy.pid'), 'utf8').trim());
      proxies.set('nginx', { name: 'nginx', h1Port: h1, h2Port: h2, pids: () => [master, ...childrenOf(master)] });
    }
    if (PROXIES.includes('haproxy')) {
      const h1 = await freePort();
      const h2 = await freePort();
      writeFileSync(join(dir, 'haproxy.cfg'), haproxyConfig(dir, b, h1, h2));
      const hp = spawn(...niced('haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')]), { stdio: ['ignore', 'ignore', 'inherit'] });
      procs.push(hp);
      await waitHttp(h1);
      proxies.set('haproxy', { name: 'haproxy', h1Port: h1, h2Port: h2, pids: () => [hp.pid!, ...childrenOf(hp.pid!)] });
    }

    // The xDS servers (one per waypoint build, each naming its own listener port), then the
    // waypoint (the real CLI, its own process).
    const serveXds = async (port: number): Promise<number> => {
      const cache = new SharedCache([TYPE.cluster, TYPE.endpoint, TYPE.listener, TYPE.route]);
      const a = new DeltaAdsServer(cache, { logger: createLogger('bench', 'silent'), metrics: xdsMetrics(new Registry()) });
      adsServers.push(a);
      const srv = new grpc.Server();
      xdsServers.push(srv);
      srv.addService(adsServiceDefinition as unknown as grpc.ServiceDefinition, adsImplementation({ delta: a.handle }));
      const xp = await new Promise<number>((resolve, reject) =>
        srv.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
      );
      waypointConfig(cache, port, b);
      return xp;
    };
    const wpPort = await freePort();
    const xdsPort = await serveXds(wpPort);
    let waypoint: ChildProcess | undefined;
    const spawnWaypoint = async (
      cli: string,
      xds: number,
      port: number,
      workers: number,
      name: string,
      nodeFlags: readonly string[] = WAYPOINT_NODE_FLAGS,
      /** A cgroup's procs file the waypoint starts in (its workers follow): `scale`'s CPU quota. */
      cgroupProcs?: string,
    ): Promise<{ proxy: Proxy; child: ChildProcess }> => {
      // The waypoint's process flags as deployed (waypoint/process-flags.ts), unless a shape compares others.
      const execArgv = [...nodeFlags, ...(args.profile ? ['--cpu-prof', `--cpu-prof-dir=${args.profile}`] : [])];
      // Node flags for the waypoint processes, for diagnosis (e.g. --trace-gc).
      // NODEMESH_BENCH_BASELINE_NODE_ARGS: the baseline's instead (e.g. the same build with other flags).
      const extra =
        name === 'baseline' && process.env.NODEMESH_BENCH_BASELINE_NODE_ARGS !== undefined
          ? 'NODEMESH_BENCH_BASELINE_NODE_ARGS'
          : 'NODEMESH_BENCH_WAYPOINT_NODE_ARGS';
      execArgv.push(...(process.env[extra] ?? '').split(' ').filter(Boolean));
      // instr: under callgrind, counting instructions (V8's JIT code needs the self-modifying-code check).
      const under = INSTR
        ? ['--tool=callgrind', '--cache-sim=no', '--smc-check=all-non-file', `--callgrind-out-file=${join(dir, 'callgrind.%p')}`, process.execPath]
        : [];
      const [cmd, cmdArgs] = niced(INSTR ? 'valgrind' : process.execPath, [
        ...under,
        ...execArgv,
        cli,
        'waypoint',
        'run',
        '--name',
        'bench',
        '-n',
        'bench',
        '--control',
        `127.0.0.1:${xds}`,
        '--listen-address',
        '127.0.0.1',
        '--admin-port',
        '0',
        '--metrics-port',
        '0',
        '--ready-port',
        '0',
        ...(workers > 1 ? ['--workers', String(workers)] : []),
      ]);
      // In a cgroup: the shell moves itself there, then becomes the waypoint (same pid).
      const wp = spawn(
        ...((cgroupProcs ? ['sh', ['-c', 'echo $$ > "$0" && exec "$@"', cgroupProcs, cmd, ...cmdArgs]] : [cmd, cmdArgs]) as [string, string[]]),
        {
          env: { ...process.env, ...WAYPOINT_ENV, NODEMESH_LOG_LEVEL: 'warn' },
          // V8's traces (--trace-gc in NODEMESH_BENCH_WAYPOINT_NODE_ARGS) go to stdout: kept when asked for.
          stdio: ['ignore', process.env.NODEMESH_BENCH_WAYPOINT_NODE_ARGS?.includes('--trace') ? 'inherit' : 'ignore', 'inherit'],
        },
      );
      procs.push(wp);
      await waitHttp(port, INSTR ? 600_000 : undefined);
      if (workers > 1) await sleep(2000); // every worker has its configuration
      return { proxy: { name, h1Port: port, h2Port: port, pids: () => [wp.pid!, ...childrenOf(wp.pid!)] }, child: wp };
    };
    const startWaypoint = async (workers: number, cgroupProcs?: string): Promise<Proxy> => {
      const r = await spawnWaypoint(
        join(__dirname, '..', 'cli', 'main.js'),
        xdsPort,
        wpPort,
        workers,
        workers > 1 ? `waypoint x${workers}` : 'waypoint',
        WAYPOINT_NODE_FLAGS,
        cgroupProcs,
      );
      waypoint = r.child;
      return r.proxy;
    };
    if (args.baseline) {
      // Another build of the waypoint (e.g. main before a change), measured in the same rounds.
      const port = await freePort();
      proxies.set('baseline', (await spawnWaypoint(args.baseline, await serveXds(port), port, 1, 'baseline')).proxy);
    }
    const stopWaypoint = async (): Promise<void> => {
      const wp = waypoint;
      if (!wp || wp.exitCode !== null) return;
      wp.kill('SIGTERM');
      await new Promise((r) => wp.once('exit', r));
    };
    if (PROXIES.includes('waypoint')) proxies.set('waypoint', await startWaypoint(1));
    const loadStart = loadavg();
    let widths = 11;
    const order = PROXIES.map((p) => proxies.get(p)!).filter(Boolean);
    // Unmeasured warm-up: each proxy serves closed-loop HTTP/1.1 and h2c for --warm-up seconds
    // first, so that the first round does not carry a waypoint's JIT compilation (its first
    // round's CPU per request was 1.3-1.6x the later ones').
    const warmUp = Number(args['warm-up']);
    if (warmUp > 0) {
      for (const p of order) {
        await load({ port: p.h1Port, h2: false, conns: 4, streams: 1, seconds: warmUp }, dir);
        await load({ port: p.h2Port, h2: true, conns: 4, streams: 25, seconds: warmUp }, dir);
      }
      out(`warmed up: each proxy ${warmUp} s of HTTP/1.1 and ${warmUp} s of h2c, closed loop (not measured)\n`);
    }

    const loadgenCpu = (): number => {
      // This process's reaped children (h2load runs as one and is waited for): cutime + cstime.
      const stat = readFileSync('/proc/self/stat', 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(f[13]) + Number(f[14])) / CLK_TCK;
    };
    const backendPids = (): number[] => {
      const master = Number(readFileSync(join(dir, 'nginx-backend.pid'), 'utf8').trim());
      return [master, ...childrenOf(master)];
    };
    const measured = async (p: Proxy, spec: LoadSpec): Promise<Measured> => {
      const pids = p.pids();
      const bpids = backendPids();
      const c0 = cpuSeconds(pids);
      const b0 = cpuSeconds(bpids);
      const l0 = loadgenCpu();
      const t0 = process.hrtime.bigint();
      const r = await load(spec, dir);
      const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
      const cpu = cpuSeconds(pids) - c0;
      // The CPU covers the warm-up too, the request count does not: per request is CPU per second over requests per second.
      return {
        ...r,
        cpu,
        backendCpu: cpuSeconds(bpids) - b0,
        loadgenCpu: loadgenCpu() - l0,
        rss: rssMiB(pids),
        elapsed,
        cpuPerRequest: cpu / elapsed / Math.max(1e-9, r.rps),
      };
    };
    // Every shape runs ROUNDS rounds; in each round every proxy once, the order rotated from round
    // to round, so that the machine's other work falls on all of them alike. The table gives the
    // median of the rounds with the spread (min-max), and each ratio is the median of the rounds'
    // own ratios (waypoint and the other proxy measured seconds apart).
    const rounds = async (
      who: readonly Proxy[],
      shape: string,
      title: string,
      specFor: (p: Proxy) => LoadSpec,
      cols: (r: Measured) => Record<string, number>,
    ): Promise<void> => {
      out(`\n[${shape}] ${title}, ${SECONDS} s x ${ROUNDS} rounds\n`);
      const got = new Map<string, Array<Record<string, number>>>();
      for (let i = 0; i < ROUNDS; i++) {
        const turn = who.map((_, k) => who[(k + i) % who.length]!);
        for (const p of turn) {
          const r = await measured(p, specFor(p));
          const c = cols(r);
          out(
            `  round ${i + 1} ${p.name.padEnd(12)} ${Object.entries(c)
              .map(([k, v]) => `${k} ${fmt(v, v < 10 ? 4 : 0)}`)
              .join('  ')}${r.failed ? `  not 2xx: ${r.failed}` : ''}  load ${loadavg()}\n`,
          );
          got.set(p.name, [...(got.get(p.name) ?? []), c]);
        }
      }
      tabulate(shape, got);
    };
    const tabulate = (shape: string, got: Map<string, Array<Record<string, number>>>): void => {
      const base = got.get('waypoint');
      for (const [name, runs] of got) {
        const row: Record<string, string> = {};
        for (const k of Object.keys(runs[0]!))
          row[k] = spread(
            runs.map((r) => r[k]!),
            k,
          );
        if (base && name !== 'waypoint') {
          const ratio = (k: string): string =>
            spread(
              runs.map((r, i) => (base[i]?.[k] ?? NaN) / r[k]!),
              'x',
            );
          if (runs[0]!['CPU-s/1k'] !== undefined) row['wp/this CPU'] = ratio('CPU-s/1k');
          if (runs[0]!['CPU-s/GiB'] !== undefined) row['wp/this CPU'] = ratio('CPU-s/GiB');
          if (runs[0]!.p99 !== undefined) row['wp/this p99'] = ratio('p99');
          if (runs[0]!['done/s'] !== undefined) row['wp/this rate'] = ratio('done/s');
        }
        rows.push({ shape, proxy: name, cols: row });
      }
    };
    const latencyCols = (r: Measured): Record<string, number> => ({
      'done/s': r.rps,
      'ok%': (100 * r.ok) / Math.max(1, r.sent),
      p50: r.p50,
      p99: r.p99,
      'CPU-s/1k': r.cpuPerRequest * 1000,
      'RSS MiB': r.rss,
    });

    if (SHAPES.has('h1')) {
      const direct: Proxy = { name: 'direct', h1Port: b.v1, h2Port: b.g1, pids: () => [] };
      await rounds(
        [direct, ...order],
        'h1',
        `HTTP/1.1 keep-alive, 4 connections, ${RATE} req/s open loop`,
        (p) => ({ port: p.h1Port, h2: false, conns: 4, streams: 1, rate: RATE, seconds: SECONDS }),
        (r) => {
          const c = latencyCols(r);
          return r.cpu === 0 && r.rss === 0 ? { 'done/s': c['done/s']!, 'ok%': c['ok%']!, p50: c.p50!, p99: c.p99! } : c;
        },
      );
    }
    if (INSTR) {
      // Instructions per request (user space: the process's threads, JIT code, GC, node and V8),
      // counted by callgrind: load-independent, so two builds compare on a busy machine where CPU
      // seconds do not. Not the kernel's share (system calls), not cache misses or stalls.
      const counted = (pid: number): number => {
        const r = spawnSync('callgrind_control', ['-e', 'Ir', String(pid)], { encoding: 'utf8', timeout: 120_000 });
        let sum = 0;
        for (const m of (r.stdout ?? '').matchAll(/^\s*Th\s+\d+\s+([\d,]+)/gm)) sum += Number(m[1]!.replaceAll(',', ''));
        if (sum === 0) throw new Error(`callgrind_control -e Ir ${pid}: no counts (${r.stdout}${r.stderr})`);
        return sum;
      };
      const requests = async (port: number, h2: boolean, n: number, warmUp = false): Promise<void> => {
        const a = ['-c', '4', '-m', h2 ? '25' : '1', '-n', String(n), ...(h2 ? [] : ['--h1']), '-H', 'x-bench: yes', `http://127.0.0.1:${port}/`];
        const r = spawnSync('h2load', a, { encoding: 'utf8', timeout: 900_000 });
        const done = Number(/(\d+) succeeded/.exec(r.stdout ?? '')?.[1]);
        if (r.status !== 0 || (done !== n && !warmUp)) throw new Error(`h2load ${a.join(' ')}: ${r.stdout}${r.stderr}`);
        if (done !== n) out(`  warm-up on ${port}: ${n - done} of ${n} requests failed (not counted)\n`);
      };
      const n = Number(process.env.NODEMESH_BENCH_INSTR_REQUESTS ?? 4000);
      const warm = Number(process.env.NODEMESH_BENCH_INSTR_WARM_UP ?? 20000);
      out(`\n[instr] instructions per request under callgrind (${warm} requests of warm-up per shape, then ${ROUNDS} x ${n}; closed loop, 4 connections)\n`);
      // NODEMESH_BENCH_INSTR_PROTOS=h1 (or h2c) counts one protocol only (default both).
      const protos = (process.env.NODEMESH_BENCH_INSTR_PROTOS ?? 'h1,h2c').split(',');
      for (const [shape, h2] of [
        ['instr h1', false],
        ['instr h2c', true],
      ] as const) {
        if (!protos.includes(h2 ? 'h2c' : 'h1')) continue;
        const got = new Map<string, Array<Record<string, number>>>();
        for (const p of order) await requests(h2 ? p.h2Port : p.h1Port, h2, warm, true);
        for (let i = 0; i < ROUNDS; i++) {
          for (const p of i % 2 ? [...order].reverse() : order) {
            const pid = p.pids()[0]!;
            const before = counted(pid);
            await requests(h2 ? p.h2Port : p.h1Port, h2, n);
            const per = (counted(pid) - before) / n;
            out(`  round ${i + 1} ${shape} ${p.name.padEnd(10)} ${fmt(per / 1000, 1)}k instructions per request  load ${loadavg()}\n`);
            got.set(p.name, [...(got.get(p.name) ?? []), { 'k instr/req': per / 1000 }]);
          }
        }
        for (const [name, runs] of got) {
          const base = got.get('waypoint')!;
          const cols: Record<string, string> = {
            'k instr/req': spread(
              runs.map((r) => r['k instr/req']!),
              'k instr/req',
            ),
          };
          if (name !== 'waypoint')
            cols['wp/this'] = spread(
              runs.map((r, i) => base[i]!['k instr/req']! / r['k instr/req']!),
              'x3',
            );
          rows.push({ shape, proxy: name, cols });
        }
      }
    }
    if (SHAPES.has('pair') || SHAPES.has('pair-h2c')) {
      // This build and --baseline loaded at the same time, each by its own h2load: both see the
      // same moments of a shared machine, which alternated rounds (seconds apart) do not give on a
      // loaded one. The ratio per round is this build's CPU per request over the baseline's.
      const base = proxies.get('baseline');
      const wp = proxies.get('waypoint');
      if (!base || !wp) throw new Error('--shapes pair needs --baseline and the waypoint among --proxies');
      for (const shape of ['pair', 'pair-h2c'] as const) {
        if (!SHAPES.has(shape)) continue;
        const h2 = shape === 'pair-h2c';
        out(
          `\n[${shape}] ${h2 ? 'h2c, 4 x 25 streams, closed loop' : `HTTP/1.1 keep-alive, 4 connections, ${RATE} req/s open loop`}, waypoint and baseline at the same time, ${SECONDS} s x ${ROUNDS} rounds\n`,
        );
        const got = new Map<string, Array<Record<string, number>>>();
        for (let i = 0; i < ROUNDS; i++) {
          const spec = (p: Proxy): LoadSpec =>
            h2
              ? { port: p.h2Port, h2: true, conns: 4, streams: 25, seconds: SECONDS }
              : { port: p.h1Port, h2: false, conns: 4, streams: 1, rate: RATE, seconds: SECONDS };
          const [a, c] = await Promise.all([measured(wp, spec(wp)), measured(base, spec(base))]);
          for (const [p, r] of [
            [wp, a],
            [base, c],
          ] as const) {
            const cols = latencyCols(r);
            out(
              `  round ${i + 1} ${p.name.padEnd(12)} ${Object.entries(cols)
                .map(([k, v]) => `${k} ${fmt(v, v < 10 ? 4 : 0)}`)
                .join('  ')}  load ${loadavg()}\n`,
            );
            got.set(p.name, [...(got.get(p.name) ?? []), cols]);
          }
        }
        tabulate(shape, got);
      }
    }
    for (const [shape, title, spec] of [
      ['h2c', 'h2c, 4 connections x 25 streams (100 concurrent), closed loop', { h2: true, conns: 4, streams: 25 }],
      ['grpc', 'gRPC unary over h2c, 4 x 25 streams, HTTP/2 upstream, closed loop', { h2: true, conns: 4, streams: 25, grpc: true, path: '/bench.Echo/Call' }],
    ] as const) {
      if (!SHAPES.has(shape)) continue;
      await rounds(order, shape, title, (p) => ({ ...spec, port: p.h2Port, seconds: SECONDS }), latencyCols);
    }
    if (SHAPES.has('big')) {
      await rounds(
        order,
        'big',
        '1 MiB responses, HTTP/1.1, 4 connections, closed loop',
        (p) => ({ port: p.h1Port, h2: false, conns: 4, streams: 1, seconds: SECONDS, path: '/big' }),
        (r) => ({
          'MiB/s': r.rps,
          'ok%': (100 * r.ok) / Math.max(1, r.sent),
          p50: r.p50,
          p99: r.p99,
          'CPU-s/GiB': r.cpuPerRequest * 1024,
          'RSS MiB': r.rss,
        }),
      );
    }
    if (SHAPES.has('knee')) {
      // Latency against a fixed paced rate (as `max` sends), each proxy at each of --knee-rates:
      // where the p99 passes 10 ms and how the other quantiles move on the way.
      for (const proto of args['knee-protos']!.split(',')) {
        const h2 = proto === 'h2c';
        const spec = h2 ? { h2: true, conns: 4, streams: 25 } : { h2: false, conns: 32, streams: 1 };
        out(`\n[knee ${proto}] paced as in max, ${SECONDS} s per rate\n`);
        for (const rate of args['knee-rates']!.split(',').map(Number)) {
          for (const p of order) {
            const r = await measured(p, { ...spec, port: h2 ? p.h2Port : p.h1Port, rate, seconds: SECONDS, paced: true });
            const cols: Record<string, string> = {
              'done/s': fmt(r.rps, 0),
              p50: fmt(r.p50, 2),
              p90: fmt(r.p90, 2),
              p99: fmt(r.p99, 2),
              max: fmt(r.max, 1),
              'CPU-s/1k': fmt(r.cpuPerRequest * 1000, 4),
              'proxy cores': fmt(r.cpu / r.elapsed, 2),
            };
            out(
              `  ${p.name.padEnd(10)} at ${rate}/s: ${Object.entries(cols)
                .map(([k, v]) => `${k} ${v}`)
                .join('  ')}${r.failed ? `  not 2xx: ${r.failed}` : ''}  load ${loadavg()}\n`,
            );
            rows.push({ shape: `knee ${proto} ${rate}`, proxy: p.name, cols });
          }
        }
      }
    }
    if (SHAPES.has('max')) {
      out(`\n[max] highest rate with p99 < ${P99_LIMIT_MS} ms (bounded search, 3 s per step, the proxies' steps interleaved)\n`);
      for (const [shape, spec] of [
        ['max h1', { h2: false, conns: 32, streams: 1 }],
        ['max h2c', { h2: true, conns: 4, streams: 25 }],
      ] as const) {
        if (!args['max-protos']!.split(',').includes(spec.h2 ? 'h2c' : 'h1')) continue;
        // One search per proxy (doubling from 1,000, then four bisections), advanced one step per
        // proxy in turn, so that every proxy's steps see the same stretch of the machine's load.
        const search = order.map((p) => ({ p, lo: 0, hi: 1000, doubling: true, bisections: 0, best: undefined as LoadResult | undefined, done: false }));
        while (search.some((s) => !s.done)) {
          for (const s of search) {
            if (s.done) continue;
            const rate = s.doubling ? s.hi : Math.round((s.lo + s.hi) / 2);
            const r = await load({ ...spec, port: spec.h2 ? s.p.h2Port : s.p.h1Port, rate, seconds: 3, paced: true }, dir);
            const pass = r.p99 < P99_LIMIT_MS && r.rps >= 0.97 * rate && r.ok === r.sent;
            out(
              `    ${s.p.name} at ${rate}/s: done ${fmt(r.rps, 0)}/s, ok ${r.ok}/${r.sent}, p50 ${fmt(r.p50, 3)} p99 ${fmt(r.p99, 3)} ms: ${pass ? 'pass' : 'fail'}  load ${loadavg()}\n`,
            );
            if (s.doubling) {
              if (pass) {
                s.lo = rate;
                s.best = r;
                s.hi = rate * 2;
                if (s.hi > 128_000) s.done = true;
              } else s.doubling = false;
            } else {
              if (pass) {
                s.lo = rate;
                s.best = r;
              } else s.hi = rate;
              if (++s.bisections >= 4) s.done = true;
            }
          }
        }
        const wp = search.find((s) => s.p.name === 'waypoint');
        for (const s of search) {
          const cols: Record<string, string> = { 'max req/s': String(s.lo), p50: fmt(s.best?.p50, 3), p99: fmt(s.best?.p99, 3) };
          if (wp && s !== wp) cols['wp/this'] = s.lo > 0 ? fmt(wp.lo / s.lo, 2) : '-';
          rows.push({ shape, proxy: s.p.name, cols });
          out(`  ${shape} ${s.p.name}: ${s.lo}\n`);
        }
      }
    }
    if (SHAPES.has('steady')) {
      // Memory under steady load, one waypoint per set of node flags, all side by side (so that each
      // sees the same machine): HTTP/1.1 and h2c at a fixed rate each, RSS sampled every 2 s.
      const steadySeconds = Number(args['steady-seconds']);
      const steadyRate = Number(args['steady-rate']);
      const sets = (args['flag-sets'] ?? `${WAYPOINT_NODE_FLAGS.join(' ')}|none`).split('|').map((x) => x.trim());
      out(
        `\n[steady] RSS and CPU at ${steadyRate} req/s (half HTTP/1.1 over 4 connections, half h2c over 2 x 4 streams) for ${steadySeconds} s; one waypoint per flag set, all at once\n`,
      );
      const runs: Array<{ set: string; proxy: Proxy; samples: number[]; cpu0: number; sent: number; p99: number[] }> = [];
      for (const set of sets) {
        const flags = set === 'none' || set === '' ? [] : set.split(/\s+/);
        const port = await freePort();
        const { proxy } = await spawnWaypoint(join(__dirname, '..', 'cli', 'main.js'), await serveXds(port), port, 1, set || 'none', flags);
        runs.push({ set: set || 'none', proxy, samples: [] as number[], cpu0: 0, sent: 0, p99: [] as number[] });
      }
      for (const r of runs) r.cpu0 = cpuSeconds(r.proxy.pids());
      const t0 = Date.now();
      const sampler = setInterval(() => {
        for (const r of runs) r.samples.push(rssMiB(r.proxy.pids()));
      }, 2000);
      const results = await Promise.all(
        runs.flatMap((r) => [
          load({ port: r.proxy.h1Port, h2: false, conns: 4, streams: 1, rate: steadyRate / 2, seconds: steadySeconds }, dir).then((x) => ({ r, x })),
          load({ port: r.proxy.h2Port, h2: true, conns: 2, streams: 4, rate: steadyRate / 2, seconds: steadySeconds }, dir).then((x) => ({ r, x })),
        ]),
      );
      clearInterval(sampler);
      const elapsed = (Date.now() - t0) / 1000;
      for (const { r, x } of results) {
        r.sent += x.sent;
        r.p99.push(x.p99);
      }
      // As bench/soak judges: samples of the first 30 s are warm-up; then the mean of the last third
      // against the first third's, and the floor (10th percentile) of each.
      const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
      const p10 = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 10)] ?? NaN;
      for (const r of runs) {
        const judged = r.samples.slice(15);
        const third = Math.max(1, Math.floor(judged.length / 3));
        const first = judged.slice(0, third);
        const last = judged.slice(-third);
        const cols: Record<string, string> = {
          'CPU-s/1k': fmt(((cpuSeconds(r.proxy.pids()) - r.cpu0) * 1000) / Math.max(1, r.sent), 4),
          'p99 h1/h2c': r.p99.map((p) => fmt(p, 2)).join('/'),
          'RSS 1st 3rd': fmt(mean(first), 1),
          'RSS last 3rd': fmt(mean(last), 1),
          change: `${fmt(((mean(last) - mean(first)) / mean(first)) * 100, 1)}%`,
          'floor 1st/last': `${fmt(p10(first), 1)}/${fmt(p10(last), 1)}`,
          'min-max': `${fmt(Math.min(...judged), 1)}-${fmt(Math.max(...judged), 1)}`,
        };
        rows.push({ shape: 'steady', proxy: r.set, cols });
        out(`  ${r.set}: sent ${r.sent} in ${fmt(elapsed, 0)} s; RSS every 2 s: ${r.samples.map((v) => v.toFixed(0)).join(' ')}  load ${loadavg()}\n`);
      }
      for (const r of runs) {
        const pid = r.proxy.pids()[0];
        if (pid !== undefined) process.kill(pid, 'SIGTERM');
      }
    }
    if (SHAPES.has('scale') && PROXIES.includes('waypoint')) {
      // Closed-loop saturation of 1 and 2 workers, alternated over the rounds (the waypoint
      // restarted between them), and nginx with 1 and 2 worker processes in the same rounds. The
      // load generator and the backends share the machine's cores with the proxy: their CPU is
      // shown, and the ceiling — what 2 workers could serve at most on this machine, all cores
      // busy at the measured CPU per request of the proxy, h2load and the backends, over what 1
      // worker served — says what "x2/x1" can reach here at all.
      out(`\n[scale] saturation, HTTP/1.1, 32 connections, closed loop, ${SECONDS} s x ${ROUNDS} rounds\n`);
      const cores = Number(readFileSync('/proc/cpuinfo', 'utf8').match(/^processor\s*:/gm)?.length ?? 1);
      let nginx2: Proxy | undefined;
      if (PROXIES.includes('nginx')) {
        const h1 = await freePort();
        const h2 = await freePort();
        writeFileSync(join(dir, 'proxy2.conf'), nginxConfig(dir, b, h1, h2, 2, 'nginx-proxy2'));
        startNginx('proxy2.conf', join(dir, 'nginx-proxy2.pid'));
        await waitHttp(h1);
        const master = Number(readFileSync(join(dir, 'nginx-proxy2.pid'), 'utf8').trim());
        nginx2 = { name: 'nginx x2', h1Port: h1, h2Port: h2, pids: () => [master, ...childrenOf(master)] };
      }
      const got = new Map<string, Array<Record<string, number>>>();
      const saturate = async (p: Proxy, name: string): Promise<void> => {
        // CPU per process (the primary and each worker), to see how the work is shared.
        const pids = p.pids();
        const before = pids.map((pid) => cpuSeconds([pid]));
        const idle0 = machineIdleSeconds();
        const r = await measured(p, { port: p.h1Port, h2: false, conns: 32, streams: 1, seconds: SECONDS });
        const idleCores = (machineIdleSeconds() - idle0) / r.elapsed;
        const split = pids.map((pid, i) => cpuSeconds([pid]) - before[i]!);
        const used = (r.cpu + r.loadgenCpu + r.backendCpu) / r.elapsed;
        // The cores the proxy, h2load and the backends used plus those the machine left idle, all
        // busy at these costs per request: the most any worker count could serve here and now
        // (others' work on the machine takes the rest).
        const ceilingRps = (Math.min(cores, used + idleCores) * r.rps) / used;
        const c: Record<string, number> = {
          'done/s': r.rps,
          p99: r.p99,
          'CPU-s/1k': r.cpuPerRequest * 1000,
          'proxy cores': r.cpu / r.elapsed,
          // Work per core the proxy used: with N workers on N free cores, N x this is the rate.
          'done/s per core': r.rps / (r.cpu / r.elapsed),
          'h2load cores': r.loadgenCpu / r.elapsed,
          'backend cores': r.backendCpu / r.elapsed,
          'idle cores': idleCores,
          'machine max/s': ceilingRps,
        };
        out(
          `  round ${(got.get(name)?.length ?? 0) + 1} ${name.padEnd(12)} ${Object.entries(c)
            .map(([k, v]) => `${k} ${fmt(v, v < 10 ? 3 : 0)}`)
            .join('  ')}  cores per process ${split.map((x) => fmt(x / r.elapsed, 2)).join('/')}  load ${loadavg()}\n`,
        );
        got.set(name, [...(got.get(name) ?? []), c]);
      };
      for (let i = 0; i < ROUNDS; i++) {
        for (const workers of i % 2 === 0 ? [1, 2] : [2, 1]) {
          await stopWaypoint();
          await saturate(await startWaypoint(workers), `waypoint x${workers}`);
        }
        const ng = proxies.get('nginx');
        if (ng && nginx2)
          for (const [p, n] of i % 2 === 0
            ? ([
                [ng, 'nginx x1'],
                [nginx2, 'nginx x2'],
              ] as const)
            : ([
                [nginx2, 'nginx x2'],
                [ng, 'nginx x1'],
              ] as const))
            await saturate(p, n);
      }
      // Two workers over one where each worker has the same CPU: the waypoint's process tree in a
      // cgroup capped at N x --scale-quota cores for N workers, so that the quota, not the machine,
      // bounds it, while h2load and the backends keep the rest of the machine (its idle cores are
      // shown: when they are near 0 the load generator may be what bounds the rate).
      const quota = Number(args['scale-quota']);
      if (quota > 0) {
        for (let i = 0; i < ROUNDS; i++) {
          for (const workers of i % 2 === 0 ? [1, 2] : [2, 1]) {
            await stopWaypoint();
            const limit = cpuLimit(`waypoint-x${workers}`, workers * quota);
            if (!limit) break;
            try {
              const p = await startWaypoint(workers, limit.procs);
              // A restarted waypoint's code is not compiled yet: 2 s of the same load first, unmeasured.
              await load({ port: p.h1Port, h2: false, conns: 32, streams: 1, seconds: 2 }, dir);
              const p0 = limit.periods();
              const idle0 = machineIdleSeconds();
              const r = await measured(p, { port: p.h1Port, h2: false, conns: 32, streams: 1, seconds: SECONDS });
              const p1 = limit.periods();
              const name = `quota x${workers}`;
              const c: Record<string, number> = {
                'done/s': r.rps,
                p99: r.p99,
                'CPU-s/1k': r.cpuPerRequest * 1000,
                'proxy cores': r.cpu / r.elapsed,
                'quota cores': workers * quota,
                'throttled %': (100 * (p1.throttled - p0.throttled)) / Math.max(1, p1.all - p0.all),
                'h2load cores': r.loadgenCpu / r.elapsed,
                'backend cores': r.backendCpu / r.elapsed,
                'idle cores': (machineIdleSeconds() - idle0) / r.elapsed,
              };
              out(
                `  round ${(got.get(name)?.length ?? 0) + 1} ${name.padEnd(12)} ${Object.entries(c)
                  .map(([k, v]) => `${k} ${fmt(v, v < 10 ? 3 : 0)}`)
                  .join('  ')}  load ${loadavg()}\n`,
              );
              got.set(name, [...(got.get(name) ?? []), c]);
            } finally {
              await stopWaypoint();
              limit.remove();
            }
          }
        }
      }
      for (const [name, runs] of got) {
        const row: Record<string, string> = {};
        for (const k of Object.keys(runs[0]!))
          row[k] = spread(
            runs.map((r) => r[k]!),
            k,
          );
        const one = got.get(name.replace(' x2', ' x1'));
        if (name.endsWith(' x2') && one) {
          row['x2/x1 rate'] = spread(
            runs.map((r, i) => r['done/s']! / one[i]!['done/s']!),
            'x',
          );
          // Work per core with 2 over with 1: 2 x this is "x2/x1" where each worker has a core of its
          // own (the load generator and backends elsewhere), which 2 cores shared with them cannot show.
          if (runs[0]!['done/s per core'] !== undefined)
            row['x2/x1 per core'] = spread(
              runs.map((r, i) => r['done/s per core']! / one[i]!['done/s per core']!),
              'x',
            );
          // What 2 could reach here: the machine's maximum at the 2-worker costs over 1 worker's rate.
          if (runs[0]!['machine max/s'] !== undefined)
            row['x2/x1 ceiling'] = spread(
              runs.map((r, i) => r['machine max/s']! / one[i]!['done/s']!),
              'x',
            );
        }
        rows.push({ shape: 'scale', proxy: name, cols: row });
      }
    }
    await stopWaypoint();

    out(
      `\nwaypoint vs nginx vs haproxy as the same L7 hop (route + header match + 90/10 split), loopback, one process each;\nmedian [min-max] of ${ROUNDS} interleaved rounds; load average at the start ${loadStart}, at the end ${loadavg()}\n`,
    );
    let shape = '';
    let keys: string[] = [];
    for (const r of rows) {
      if (r.shape !== shape) {
        shape = r.shape;
        keys = [...new Set(rows.filter((x) => x.shape === shape).flatMap((x) => Object.keys(x.cols)))];
        const w = Math.max(
          11,
          ...keys.map((k) => k.length + 2),
          ...rows.filter((x) => x.shape === shape).flatMap((x) => Object.values(x.cols).map((v) => v.length + 2)),
        );
        widths = w;
        out(`\n${shape.padEnd(14)}${keys.map((k) => k.padStart(w)).join('')}\n`);
      }
      out(`  ${r.proxy.padEnd(12)}${r.proxy.length > 12 ? '\n                ' : ''}${keys.map((k) => (r.cols[k] ?? '').padStart(widths)).join('')}\n`);
    }
  } finally {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
    for (const f of pidFiles) {
      try {
        process.kill(Number(readFileSync(f, 'utf8').trim()), 'SIGQUIT');
      } catch {
        // already gone
      }
    }
    for (const a of adsServers) a.closeAll();
    for (const x of xdsServers) x.forceShutdown();
    await sleep(500);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench/waypoint: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
