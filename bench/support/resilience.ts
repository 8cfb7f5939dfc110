// What bench/chaos and bench/soak share: a demo lab (control plane, node proxies, the backend's
// waypoint), traffic from the frontend pod that records every failure with its time, samples of the
// mesh processes' RSS and open fds, and a capture of the underlay to look for plaintext.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { labDown } from '../../lab/down';
import { assignRoles, service, type DemoRole } from '../../lab/mesh/demo';
import { meshDown, meshUp } from '../../lab/mesh/up';
import { labUp } from '../../lab/up';
import { labTimeout } from '../../lab/time-scale';
import { spawnInLab } from '../../lab/spawn';
import { readLabProcesses, tryLoadLabState, type LabProcess, type LabTopology } from '../../lab/state';
import { isSameProcess } from '../../lab/sys';

/** Marks every byte the traffic sends, so a capture of the underlay can be searched for it. */
export const PLAINTEXT_MARKER = 'NMCHAOS-PLAINTEXT-MARKER';

export const loadText = (): string =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');

export async function removeLab(lab: string, say: (m: string) => void): Promise<void> {
  const s = tryLoadLabState(lab);
  if (s) await meshDown(s, () => undefined).catch((e: unknown) => say(`warning: mesh down: ${(e as Error).message}`));
  await labDown(lab).catch((e: unknown) => say(`warning: lab down: ${(e as Error).message}`));
}

/** A demo lab as chaos and soak use it: the topology, the frontend pod the traffic runs in, the mesh processes. */
export interface DemoLab {
  readonly topo: LabTopology;
  readonly fe: DemoRole;
  readonly components: Component[];
}

/**
 * Runs `body` in a fresh demo lab `lab` (2 nodes x 3 pods, the mesh and the demo): skipped without
 * root; a lab of that name left from an earlier run is removed first; the lab is removed when
 * `body` ends or throws and on SIGINT/SIGTERM (exit 130). `cleanup` runs after the lab is gone.
 */
export async function withDemoLab(
  lab: string,
  say: (m: string) => void,
  body: (l: DemoLab) => Promise<number>,
  cleanup: () => void = () => undefined,
): Promise<number> {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    say('skipped: needs root (it builds a netns lab)');
    return 0;
  }
  let removing: Promise<void> | undefined;
  const finalDown = (): Promise<void> => (removing ??= removeLab(lab, say).finally(cleanup));
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      say(`${sig}: removing lab ${lab}`);
      void finalDown().finally(() => process.exit(130));
    });
  }
  await removeLab(lab, say);
  try {
    say(`lab ${lab}: 2 nodes x 3 pods with the demo`);
    const { state: topo } = await labUp({ lab, nodes: 2, podsPerNode: 3 });
    await meshUp(topo, { mesh: true, demo: true, drive: { connections: 2, concurrency: 1, size: 0, timeoutMs: 10_000 } }, (m) => say(m));
    const fe = assignRoles(topo).find((r) => r.role === 'frontend') as DemoRole;
    return await body({ topo, fe, components: meshComponents(topo) });
  } finally {
    await finalDown();
  }
}

/** A benchmark script's entry: exit with main's code; an error is printed with its stack, exit 1. */
export function runBenchmark(name: string, main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}

/** One failure the traffic saw: when the request started, how long it took, what happened. */
export interface TrafficFailure {
  readonly kind: 'http' | 'echo';
  readonly t: number;
  readonly ms: number;
  readonly error: string;
}

export interface TrafficTotals {
  /**
   * `skipped`: requests not sent because CONC x 4 were already waiting for an answer (the rate
   * asked cannot be held over CONC connections at the latency seen: more connections, or a slower
   * path); `sent` = the rest.
   */
  http: { ok: number; failed: number; sent?: number; skipped?: number };
  echo: { bytesVerified: number; corrupted: number; reconnects: number };
}

/** The last second's answered requests: how many, and their latency p50/p99 in ms. */
export interface TrafficSecond {
  readonly at: number;
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
}

// Inside the frontend's pod: HTTP GETs to the backend (through its waypoint) at RATE per second
// over CONC connections kept alive (a failed connection is replaced), and one TCP stream to
// tcp-echo that sends 1 KiB every 50 ms and checks every byte that comes back. Prints one JSON line
// per failure and a totals line every second; stops after SECONDS. A line "pause" on stdin stops
// the HTTP requests: once none is in flight (or after 10 s) its keep-alive connections are closed
// and it prints {"paused":…}; "resume" starts them again (the echo stream runs on).
const TRAFFIC = `
const http = require('node:http');
const net = require('node:net');
const crypto = require('node:crypto');
const [bHost, bPort, eHost, ePort, rate, conc, seconds, marker, timeoutMs] = process.argv.slice(1).filter((a) => a !== '--');
let end = Date.now() + Number(seconds) * 1000;
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const totals = { http: { ok: 0, failed: 0, sent: 0, skipped: 0 }, echo: { bytesVerified: 0, corrupted: 0, reconnects: 0 } };
let agent = new http.Agent({ keepAlive: true, maxSockets: Number(conc) });
let inflight = 0;
let paused = false;
process.stdin.setEncoding('utf8').on('data', (d) => {
  for (const cmd of d.split('\\n')) {
    if (cmd === 'pause' && !paused) {
      paused = true;
      const asked = Date.now();
      (function idle() {
        if (inflight > 0 && Date.now() - asked < 10000) return void setTimeout(idle, 10);
        agent.destroy();
        agent = new http.Agent({ keepAlive: true, maxSockets: Number(conc) });
        out({ paused: { at: Date.now(), inflight } });
      })();
    } else if (cmd === 'resume' && paused) {
      paused = false;
      next = Date.now();
    }
  }
});
let lat = [];
function get() {
  const t = Date.now();
  const t0 = performance.now();
  inflight++;
  totals.http.sent++;
  const req = http.request({ host: bHost, port: Number(bPort), path: '/?m=' + marker, agent, timeout: Number(timeoutMs) }, (res) => {
    res.resume();
    res.on('end', () => { inflight--; if (res.statusCode === 200) { totals.http.ok++; lat.push(performance.now() - t0); } else { totals.http.failed++; out({ kind: 'http', t, ms: Date.now() - t, error: 'HTTP ' + res.statusCode }); } });
    res.on('error', (e) => { inflight--; totals.http.failed++; out({ kind: 'http', t, ms: Date.now() - t, error: e.code || e.message }); });
  });
  req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
  req.on('error', (e) => { inflight--; totals.http.failed++; out({ kind: 'http', t, ms: Date.now() - t, error: e.code || e.message }); });
  req.end();
}
const every = 1000 / Number(rate);
let next = Date.now();
(function pace() {
  if (Date.now() >= end) return;
  if (paused) { next = Date.now(); return void setTimeout(pace, 20); }
  while (Date.now() >= next) { if (inflight < Number(conc) * 4) get(); else totals.http.skipped++; next += every; }
  setTimeout(pace, Math.max(1, next - Date.now()));
})();
// the echo stream
let sock, pending = [], t0 = 0;
function connect() {
  t0 = Date.now();
  pending = [];
  let buf = Buffer.alloc(0);
  const s = net.connect({ host: eHost, port: Number(ePort) });
  sock = s;
  s.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (pending.length && buf.length >= pending[0].length) {
      const want = pending.shift();
      const got = buf.subarray(0, want.length);
      buf = buf.subarray(want.length);
      if (got.equals(want)) totals.echo.bytesVerified += want.length; else { totals.echo.corrupted += want.length; out({ kind: 'echo', t: Date.now(), ms: 0, error: 'CORRUPTED' }); }
    }
  });
  const lost = (why) => {
    if (sock !== s) return;
    sock = undefined;
    // counted at the moment the stream broke (it may have lived long before)
    out({ kind: 'echo', t: Date.now(), ms: 0, error: why, livedMs: Date.now() - t0 });
    if (Date.now() < end) { totals.echo.reconnects++; setTimeout(connect, 100); }
  };
  s.on('error', (e) => lost(e.code || e.message));
  s.on('close', () => lost('CLOSED'));
}
connect();
const tick = setInterval(() => {
  if (sock && Date.now() < end) {
    const chunk = Buffer.concat([Buffer.from(marker), crypto.randomBytes(1024 - marker.length)]);
    pending.push(chunk);
    sock.write(chunk);
  }
}, 50);
const q = (xs, p) => xs.length ? xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] : 0;
const report = setInterval(() => {
  const xs = lat.sort((a, b) => a - b);
  lat = [];
  out({ totals, at: Date.now(), second: { n: xs.length, p50: q(xs, 0.5), p99: q(xs, 0.99) } });
}, 1000);
const finish = () => { clearInterval(tick); clearInterval(report); out({ totals, at: Date.now(), final: true }); process.exit(0); };
setTimeout(finish, Number(seconds) * 1000 + 6000);
// asked to end early (bench/chaos once its schedule is done): the requests in flight get 5 s
process.once('SIGTERM', () => { end = Date.now(); setTimeout(finish, 5000); });
`;

export interface Traffic {
  readonly failures: TrafficFailure[];
  /** One entry a second: requests answered in it and their latency. */
  readonly seconds: TrafficSecond[];
  /** The generator's process (its CPU is sampled like the mesh's). */
  readonly pid: number | undefined;
  totals(): TrafficTotals;
  /** Resolves when the traffic has stopped (after its seconds). */
  readonly done: Promise<void>;
  /** Ends it now: no new request, 5 s for those in flight, the final totals; resolves with `done`. */
  end(): Promise<void>;
  /**
   * Stops the HTTP requests: resolves once none is in flight (at most 10 s) and the generator's
   * keep-alive connections are closed (the echo stream runs on), with the requests still in flight
   * then (0 unless the 10 s ran out).
   */
  pause(): Promise<number>;
  /** Starts the HTTP requests again at the rate asked. */
  resume(): void;
  stop(): void;
}

/** Traffic for `seconds`; a request that has no answer within 5 s (scaled on a slow machine, lab/time-scale.ts) fails. */
export function startTraffic(topo: LabTopology, fe: DemoRole, o: { rate: number; connections: number; seconds: number }): Traffic {
  const b = service('backend');
  const e = service('tcp-echo');
  const child: ChildProcess = spawnInLab(
    topo,
    fe.pod.name,
    [
      process.execPath,
      '-e',
      TRAFFIC,
      '--',
      b.vip,
      String(b.port),
      e.vip,
      String(e.port),
      String(o.rate),
      String(o.connections),
      String(o.seconds),
      PLAINTEXT_MARKER,
      String(labTimeout(5000)),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  // a generator that has ended makes a late pause/resume write fail (EPIPE): nothing to do then
  child.stdin?.on('error', () => undefined);
  let onPaused: ((inflight: number) => void) | undefined;
  const failures: TrafficFailure[] = [];
  const seconds: TrafficSecond[] = [];
  let totals: TrafficTotals = { http: { ok: 0, failed: 0 }, echo: { bytesVerified: 0, corrupted: 0, reconnects: 0 } };
  let rest = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    rest += d;
    const lines = rest.split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) {
      if (!l.trim()) continue;
      const o = JSON.parse(l) as
        | TrafficFailure
        | { totals: TrafficTotals; at: number; second?: Omit<TrafficSecond, 'at'> }
        | { paused: { at: number; inflight: number } };
      if ('paused' in o) {
        onPaused?.(o.paused.inflight);
        onPaused = undefined;
      } else if ('totals' in o) {
        totals = o.totals;
        if (o.second) seconds.push({ at: o.at, ...o.second });
      } else failures.push(o);
    }
  });
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const end = (): Promise<void> => (child.kill('SIGTERM'), done);
  const pause = (): Promise<number> =>
    new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the traffic generator did not pause within 20 s')), 20_000);
      onPaused = (n) => {
        clearTimeout(timer);
        resolve(n);
      };
      child.stdin?.write('pause\n');
    });
  const resume = (): void => void child.stdin?.write('resume\n');
  return { failures, seconds, pid: child.pid, totals: () => totals, done, end, pause, resume, stop: () => void child.kill('SIGKILL') };
}

/** A mesh process of the lab: the control plane, a node proxy, a waypoint. */
export interface Component {
  /** For tables: `node-proxy@node1`, `waypoint@wp-waypoint`, `control-plane@control`. */
  readonly id: string;
  readonly name: string;
  readonly place: string;
}

export function meshComponents(topo: LabTopology): Component[] {
  const procs = readLabProcesses(topo.lab).filter((p) => isSameProcess(p.pid, p.startTime));
  const wanted = procs.filter((p) => p.name === 'control-plane' || p.name === 'node-proxy' || p.name === 'waypoint');
  return wanted.map((p) => ({ id: `${p.name}@${p.place}`, name: p.name, place: p.place })).sort((a, b) => a.id.localeCompare(b.id));
}

/** The live process of a component, if any. */
export function liveProcess(topo: LabTopology, c: Component): LabProcess | undefined {
  return readLabProcesses(topo.lab).find((p) => p.name === c.name && p.place === c.place && isSameProcess(p.pid, p.startTime));
}

/**
 * RSS (KiB; split into anonymous memory — heap, buffers — and file-backed pages — the mapped
 * node binary and libraries, which the kernel may drop and fault back in) and open fds of a
 * process; undefined when it is gone.
 */
export function usage(pid: number): { rssKiB: number; anonKiB: number; fileKiB: number; fds: number; cpuSeconds: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN);
    return {
      rssKiB: kib('VmRSS'),
      anonKiB: kib('RssAnon'),
      fileKiB: kib('RssFile') + kib('RssShmem'),
      fds: readdirSync(`/proc/${pid}/fd`).length,
      cpuSeconds: cpuSeconds(pid),
    };
  } catch {
    return undefined;
  }
}

/** User + system CPU seconds a process has used (/proc/PID/stat; clock ticks of 100 Hz). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // the fields after the command name (which may hold spaces), from field 3 on
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** tcpdump on the underlay bridge (in the underlay netns) into `file`; stop() ends it. */
export function captureUnderlay(topo: LabTopology, file: string): { stop(): Promise<void> } {
  const child = spawn('ip', ['netns', 'exec', topo.underlay.netns, 'tcpdump', '-i', topo.underlay.bridge, '-s', '0', '-U', '-w', file], {
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGINT');
        setTimeout(() => child.kill('SIGKILL'), 3000).unref();
      }),
  };
}

/** How often `needle` appears in a file (a capture): plaintext the mesh should have encrypted. */
export function countInFile(file: string, needle: string): { bytes: number; hits: number } {
  const data = readFileSync(file);
  const n = Buffer.from(needle);
  let hits = 0;
  for (let i = data.indexOf(n); i >= 0; i = data.indexOf(n, i + n.length)) hits++;
  return { bytes: data.length, hits };
}
