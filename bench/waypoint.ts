// Benchmark (not a test): the waypoint as an L7 reverse proxy on loopback, at fixed request rates,
// against the direct path and against nginx configured as the same reverse proxy, in one run.
//
//   node dist/bench/waypoint.js [--rates 500,2000] [--seconds 8] [--connections 4]
//
// - backend: nginx answering 200 with a 64-byte body (no Node on the far side, so the figures
//   are the proxy's);
// - direct: h2load -> backend;
// - waypoint: h2load -> `nodemesh waypoint run` (its own process, plaintext mode, configured over
//   delta ADS by an in-process xDS server with one Listener/RouteConfiguration/Cluster) -> backend;
// - nginx: h2load -> nginx `proxy_pass` with upstream keep-alive -> backend.
// Load: h2load --h1 with --rps per connection (open loop at a fixed rate, bounded by --seconds);
// latency p50/p99 from its per-request log. The proxies' CPU seconds (utime+stime from
// /proc/PID/stat) and RSS (VmRSS) per 1,000 requests are read around each run. Access logs are
// off on both proxies (NODEMESH_LOG_LEVEL=warn; nginx access_log off).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
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
import { TYPE } from '../waypoint/xds/resources';

const { values: args } = parseArgs({
  options: { rates: { type: 'string', default: '500,2000' }, seconds: { type: 'string', default: '8' }, connections: { type: 'string', default: '4' } },
});
const RATES = args.rates!.split(',').map(Number);
const SECONDS = Number(args.seconds);
const CONNS = Number(args.connections);
const CLK_TCK = 100;

for (const tool of ['nginx', 'h2load']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    process.stderr.write(`bench/waypoint: ${tool} is not installed (apt-get install -y ${tool === 'h2load' ? 'nghttp2-client' : 'nginx'})\n`);
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
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
  }
  return ticks / CLK_TCK;
}

function rssMiB(pids: number[]): number {
  let kb = 0;
  for (const pid of pids) kb += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return kb / 1024;
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function waitHttp(port: number, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${port}/`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing answered 200 on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Result {
  readonly path: string;
  readonly rate: number;
  readonly sent: number;
  readonly ok: number;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly cpuPer1k?: number;
  readonly rss?: number;
}

// Asynchronous on purpose: this process also hosts the waypoint's xDS server, and a spawnSync
// here blocked its event loop for the whole series of runs, so the waypoint's keepalive PING went
// unanswered and its xDS stream was dropped ("Connection dropped") mid-benchmark.
async function load(port: number, rate: number, dir: string): Promise<{ sent: number; ok: number; rps: number; p50: number; p99: number }> {
  const log = join(dir, `h2load-${port}-${rate}.log`);
  const perConn = Math.max(1, Math.round(rate / CONNS));
  const h2load = spawn('h2load', ['--h1', '-c', String(CONNS), '-m', '1', '--rps', String(perConn), '-D', String(SECONDS), '--warm-up-time=1', `--log-file=${log}`, `http://127.0.0.1:${port}/`], { stdio: ['ignore', 'pipe', 'pipe'], timeout: (SECONDS + 30) * 1000 });
  let output = '';
  h2load.stdout.on('data', (d: Buffer) => (output += d.toString()));
  h2load.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const status = await new Promise<number | null>((resolve, reject) => h2load.on('error', reject).on('close', resolve));
  if (status !== 0) throw new Error(`h2load failed: ${output}`);
  const lines = readFileSync(log, 'utf8').trim().split('\n').filter(Boolean);
  const lat: number[] = [];
  let ok = 0;
  for (const l of lines) {
    const [, status, us] = l.split('\t');
    if (status === '200') ok++;
    lat.push(Number(us) / 1000);
  }
  lat.sort((a, b) => a - b);
  const q = (p: number): number => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
  return { sent: lines.length, ok, rps: lines.length / SECONDS, p50: q(0.5), p99: q(0.99) };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'nm-bench-waypoint-'));
  const procs: ChildProcess[] = [];
  let nginxPid: number | undefined;
  let xdsServer: grpc.Server | undefined;
  let ads: DeltaAdsServer | undefined;
  try {
    // nginx: the backend (return 200) and the reverse proxy, one master, one worker, own pid file.
    const backendPort = await freePort();
    const nginxProxyPort = await freePort();
    writeFileSync(
      join(dir, 'nginx.conf'),
      `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
daemon on;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:${backendPort}; location / { default_type text/plain; return 200 "0123456789012345678901234567890123456789012345678901234567890123"; } }
  upstream backend { server 127.0.0.1:${backendPort}; keepalive 64; }
  server { listen 127.0.0.1:${nginxProxyPort}; location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; } }
}
`,
    );
    const ng = spawnSync('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], { encoding: 'utf8' });
    if (ng.status !== 0) throw new Error(`nginx did not start: ${ng.stderr}`);
    nginxPid = Number(readFileSync(join(dir, 'nginx.pid'), 'utf8').trim());
    await waitHttp(backendPort);
    await waitHttp(nginxProxyPort);
    const nginxPids = [nginxPid, ...childrenOf(nginxPid)];

    // The xDS server with the waypoint's configuration.
    const quiet = createLogger('bench', 'silent');
    const cache = new SharedCache([TYPE.cluster, TYPE.endpoint, TYPE.listener, TYPE.route]);
    const wpPort = await freePort();
    const hcm = HttpConnectionManager.fromPartial({
      statPrefix: 'bench',
      routeSpecifier: { $case: 'rds', value: { routeConfigName: 'bench', configSource: { configSourceSpecifier: { $case: 'ads', value: {} } } } },
      httpFilters: [{ name: 'envoy.filters.http.router', configType: { $case: 'typedConfig', value: pack(Router, Router.fromPartial({})) } }],
    });
    const listener = Listener.fromPartial({
      name: 'bench',
      address: { address: { $case: 'socketAddress', value: { address: '127.0.0.1', portSpecifier: { $case: 'portValue', value: wpPort } } } },
      filterChains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', configType: { $case: 'typedConfig', value: pack(HttpConnectionManager, hcm) } }] }],
    });
    const cluster = Cluster.fromPartial({ name: 'backend', clusterDiscoveryType: { $case: 'type', value: Cluster_DiscoveryType.EDS }, edsClusterConfig: { serviceName: 'backend', edsConfig: { configSourceSpecifier: { $case: 'ads', value: {} } } }, lbPolicy: Cluster_LbPolicy.ROUND_ROBIN });
    const cla = ClusterLoadAssignment.fromPartial({ clusterName: 'backend', endpoints: [{ lbEndpoints: [{ hostIdentifier: { $case: 'endpoint', value: { address: { address: { $case: 'socketAddress', value: { address: '127.0.0.1', portSpecifier: { $case: 'portValue', value: backendPort } } } } } } }] }] });
    const routes = RouteConfiguration.fromPartial({ name: 'bench', virtualHosts: [{ name: 'all', domains: ['*'], routes: [{ match: { pathSpecifier: { $case: 'prefix', value: '/' } }, action: { $case: 'route', value: { clusterSpecifier: { $case: 'cluster', value: 'backend' }, timeout: { seconds: 0, nanos: 0 } } } }] }] });
    cache.update(TYPE.cluster, [xdsResource(TYPE.cluster, 'backend', Cluster.encode(cluster).finish())]);
    cache.update(TYPE.endpoint, [xdsResource(TYPE.endpoint, 'backend', ClusterLoadAssignment.encode(cla).finish())]);
    cache.update(TYPE.listener, [xdsResource(TYPE.listener, 'bench', Listener.encode(listener).finish())]);
    cache.update(TYPE.route, [xdsResource(TYPE.route, 'bench', RouteConfiguration.encode(routes).finish())]);
    ads = new DeltaAdsServer(cache, { logger: quiet, metrics: xdsMetrics(new Registry()) });
    xdsServer = new grpc.Server();
    xdsServer.addService(adsServiceDefinition as unknown as grpc.ServiceDefinition, adsImplementation({ delta: ads.handle }));
    const xdsPort = await new Promise<number>((resolve, reject) => xdsServer!.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));

    // The waypoint: the real CLI, its own process.
    const wp = spawn(process.execPath, [join(__dirname, '..', 'cli', 'main.js'), 'waypoint', 'run', '--name', 'bench', '-n', 'bench', '--control', `127.0.0.1:${xdsPort}`, '--listen-address', '127.0.0.1', '--admin-port', '0', '--metrics-port', '0', '--ready-port', '0'], {
      env: { ...process.env, NODEMESH_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    procs.push(wp);
    await waitHttp(wpPort);
    const wpPid = wp.pid!;

    const results: Result[] = [];
    for (const rate of RATES) {
      results.push({ path: 'direct', rate, ...(await load(backendPort, rate, dir)) });
      for (const [path, port, pids] of [
        ['waypoint', wpPort, [wpPid]],
        ['nginx', nginxProxyPort, nginxPids],
      ] as const) {
        const cpu0 = cpuSeconds([...pids]);
        const r = await load(port, rate, dir);
        const cpu = cpuSeconds([...pids]) - cpu0;
        results.push({ path, rate, ...r, cpuPer1k: (cpu * 1000) / r.sent, rss: rssMiB([...pids]) });
      }
    }
    const fmt = (n: number | undefined, d = 2): string => (n === undefined ? '-' : n.toFixed(d));
    process.stdout.write(`\nwaypoint L7 proxy, loopback, HTTP/1.1, ${CONNS} connections, ${SECONDS} s per run, 64-byte responses\n`);
    process.stdout.write('path       target/s   done/s   ok%     p50 ms   p99 ms   proxy CPU s/1k req   proxy RSS MiB\n');
    for (const r of results) {
      process.stdout.write(
        `${r.path.padEnd(10)} ${String(r.rate).padStart(8)} ${fmt(r.rps, 0).padStart(8)} ${fmt((100 * r.ok) / Math.max(1, r.sent), 1).padStart(6)} ${fmt(r.p50, 3).padStart(9)} ${fmt(r.p99, 3).padStart(8)} ${fmt(r.cpuPer1k, 4).padStart(20)} ${fmt(r.rss, 1).padStart(15)}\n`,
      );
    }
  } finally {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
    if (nginxPid) {
      try {
        process.kill(nginxPid, 'SIGQUIT');
      } catch {
        // already gone
      }
    }
    ads?.closeAll();
    xdsServer?.forceShutdown();
    await new Promise((r) => setTimeout(r, 300));
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
