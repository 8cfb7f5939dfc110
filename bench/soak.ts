// `npm run bench -- soak [--minutes 2] [--rate 1000] [--connections 64] [--sample-seconds 5]
// [--warmup-seconds S] [--no-heap-probe] [--lab nmsk]`
//
// A soak in a demo lab (needs root, run it under the machine lock): HTTP GETs from the frontend to
// the backend through its waypoint at --rate per second over --connections kept-alive connections,
// plus a TCP stream to tcp-echo whose every byte is checked, for --minutes. Every mesh process's
// RSS (anonymous and file-backed), open fds and CPU time (the control plane, each node proxy, the
// waypoint) are sampled about every --sample-seconds, at a random point of each interval (a
// garbage-collected heap saws with a period of seconds; samples on a fixed beat can alias with it
// and turn its phase into a false trend).
//
// The rule, per process, on the samples after the warm-up (the first --warmup-seconds of traffic;
// default 30 s, and 5 min for runs of 15 min or more), split in thirds:
//   - the mean RSS of the last third within ±5 % of the first third's (what the process costs on
//     average: a sawtooth's mean is fair to judge when each third holds many samples at random
//     phases — ≥ 80 in a 30-min run — so it moves only if the sawtooth itself grows);
//   - the floor (10th percentile) of the last third within ±5 % of the first third's (what it
//     returns to after collections: a leak raises it even under a sawtooth);
//   - the mean fd count of the last third within ±5 % of the first third's, and no restart.
// The floor is a second condition, never an alternative: a process passes only if both hold. The
// table also shows each third's peak (90th percentile), the anonymous/file-backed split and CPU
// seconds per 1,000 requests. The run also fails when the rate asked is not held (< 95 % answered
// after the warm-up): a soak at a lower rate proves less. Requests the generator could not send
// (--connections x 4 already waiting) are counted as skipped, with the latency per minute, so a
// shortfall is told apart: the generator's connections x latency, or a path too slow.
//
// Leak or garbage collector: unless --no-heap-probe, each process's live memory after a full
// collection (support/heap-probe.ts: through the inspector, which SIGUSR1 opens in the lab) is read
// just before the judged window and at its end, while the traffic runs. A leak grows what survives
// a full collection; GC behaviour does not. The probe's collection lands before the first judged
// sample, so it can only lower the first third (a stricter verdict).
// Prints the achieved request rate, failures, bytes verified/corrupted and a row per process.
// Bounded by --minutes; the lab is removed at the end, on failure and on Ctrl-C.
import { parseArgs } from 'node:util';
import { sleep } from '../lab/sys';
import { liveMemoryAfterGc, type LiveMemory } from './support/heap-probe';
import { liveProcess, loadText, runBenchmark, startTraffic, usage, withDemoLab, type TrafficSecond } from './support/resilience';

const say = (m: string): void => void process.stdout.write(`soak: ${m}\n`);

interface Sample {
  readonly at: number;
  readonly pid: number;
  readonly rssKiB: number;
  readonly anonKiB: number;
  readonly fileKiB: number;
  readonly fds: number;
  readonly cpuSeconds: number;
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
/** The `p`th percentile (0–100, nearest rank below). */
const percentile = (xs: readonly number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.floor(((xs.length - 1) * p) / 100)] ?? 0;

/** A statistic of the first and of the last third of the samples after the warm-up, and its change in per cent. */
function thirds(values: readonly number[], stat: (xs: readonly number[]) => number): { first: number; last: number; changePct: number } {
  const third = Math.max(1, Math.floor(values.length / 3));
  const first = stat(values.slice(0, third));
  const last = stat(values.slice(-third));
  return { first, last, changePct: first === 0 ? 0 : ((last - first) / first) * 100 };
}

/** The means of the first and last third: what the process costs on average. Judged. */
export const drift = (values: readonly number[]) => thirds(values, mean);

/**
 * The floors (10th percentile) of the first and last third: what a garbage-collected process
 * returns to between collections. A leak raises it; a heap sawtooth does not. Judged, beside the
 * mean.
 */
export const floorDrift = (values: readonly number[]) => thirds(values, (xs) => percentile(xs, 10));

/** The peaks (90th percentile) of the first and last third: what a sawtooth reaches. Shown, not judged. */
export const peakDrift = (values: readonly number[]) => thirds(values, (xs) => percentile(xs, 90));

/** The default warm-up: 30 s, and 5 min for runs of 15 min or more. */
export function defaultWarmupSeconds(minutes: number): number {
  return minutes >= 15 ? 300 : 30;
}

const pct = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(1)}%`;

interface Window {
  readonly okAt: number;
  readonly at: number;
  readonly cpu: Map<string, number>;
  loadgenCpu: number;
}

/** The judged samples of one process: its verdict and the figures of the table. */
export function judge(values: { rss: number[]; fds: number[] }, restarted: boolean) {
  const rss = drift(values.rss);
  const floor = floorDrift(values.rss);
  const peak = peakDrift(values.rss);
  const fds = drift(values.fds);
  const n = values.rss.length;
  const why: string[] = [];
  if (n < 3) why.push('too few samples');
  if (restarted) why.push('restarted');
  if (Math.abs(rss.changePct) > 5) why.push('mean RSS');
  if (Math.abs(floor.changePct) > 5) why.push('RSS floor');
  if (Math.abs(fds.changePct) > 5) why.push('fds');
  return { rss, floor, peak, fds, n, flat: why.length === 0, why };
}

const waitMs = (ms: number): Promise<void> => sleep(Math.max(0, ms));

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      minutes: { type: 'string' },
      rate: { type: 'string' },
      connections: { type: 'string' },
      'sample-seconds': { type: 'string' },
      'warmup-seconds': { type: 'string' },
      'no-heap-probe': { type: 'boolean' },
      lab: { type: 'string' },
    },
  });
  const minutes = Number(values.minutes ?? 2);
  const rate = Number(values.rate ?? 1000);
  const connections = Number(values.connections ?? 64);
  const sampleSeconds = Number(values['sample-seconds'] ?? 5);
  const warmup = Number(values['warmup-seconds'] ?? defaultWarmupSeconds(minutes));
  const probe = !values['no-heap-probe'];
  const lab = values.lab ?? 'nmsk';
  if (!(minutes > 0) || ![rate, connections, sampleSeconds, warmup].every((v) => Number.isInteger(v) && v > 0)) {
    throw new Error('--minutes takes a positive number; --rate, --connections, --sample-seconds and --warmup-seconds positive integers');
  }
  if (warmup >= minutes * 60 * 0.75) throw new Error(`--warmup-seconds ${warmup} leaves too little of a ${minutes}-minute run to judge`);
  const load0 = loadText();
  return withDemoLab(lab, say, async ({ topo, fe, components }) => {
    const seconds = Math.round(minutes * 60);
    say(
      `${seconds} s at ${rate} req/s over ${connections} connections; sampling ${components.map((c) => c.id).join(', ')} about every ${sampleSeconds} s; the first ${warmup} s are warm-up${probe ? '; live memory after a full GC read at the start and the end of the judged window' : ''}`,
    );
    // the traffic outlasts the sampling by a minute, so the last probe runs under traffic
    const traffic = startTraffic(topo, fe, { rate, connections, seconds: seconds + (probe ? 60 : 0) });
    const started = Date.now();
    const samples = new Map<string, Sample[]>(components.map((c) => [c.id, []]));
    const probes = new Map<string, { start?: LiveMemory; end?: LiveMemory; error?: string }>(components.map((c) => [c.id, {}]));
    let stopped = false;
    void traffic.done.then(() => (stopped = true));
    const readProbes = async (which: 'start' | 'end'): Promise<void> => {
      for (const c of components) {
        const p = liveProcess(topo, c);
        if (!p) continue;
        const entry = probes.get(c.id)!;
        try {
          entry[which] = await liveMemoryAfterGc(p.pid);
        } catch (err) {
          entry.error = (err as Error).message;
        }
      }
    };
    const window = (): Window => {
      const cpu = new Map<string, number>();
      for (const c of components) {
        const p = liveProcess(topo, c);
        const u = p && usage(p.pid);
        if (u) cpu.set(c.id, u.cpuSeconds);
      }
      const lg = traffic.pid ? usage(traffic.pid) : undefined;
      return { okAt: traffic.totals().http.ok, at: Date.now(), cpu, loadgenCpu: lg?.cpuSeconds ?? Number.NaN };
    };
    let warm: Window | undefined;
    const probeAt = warmup - Math.min(30, Math.floor(warmup / 2));
    let probedStart = !probe;
    // one sample at a random point of each interval, from the start (the warm-up's are shown, not judged)
    for (let slot = 0; !stopped && (slot + 1) * sampleSeconds <= seconds; slot++) {
      await waitMs(started + (slot + Math.random()) * sampleSeconds * 1000 - Date.now());
      if (!probedStart && Date.now() - started >= probeAt * 1000) {
        probedStart = true;
        await readProbes('start');
      }
      if (!warm && Date.now() - started >= warmup * 1000) warm = window();
      for (const c of components) {
        const p = liveProcess(topo, c);
        const u = p && usage(p.pid);
        if (p && u) samples.get(c.id)!.push({ at: (Date.now() - started) / 1000, pid: p.pid, ...u });
      }
      await waitMs(started + (slot + 1) * sampleSeconds * 1000 - Date.now());
    }
    const end = window();
    if (probe && !stopped) await readProbes('end');
    await traffic.done;
    const totals = traffic.totals();
    const w0 = warm ?? { okAt: 0, at: started, cpu: new Map<string, number>(), loadgenCpu: Number.NaN };
    const answered = end.okAt - w0.okAt;
    const achieved = answered / ((end.at - w0.at) / 1000);
    const perK = (a: number | undefined, b: number | undefined): string =>
      a === undefined || b === undefined || !(answered > 0) ? '-' : ((b - a) / (answered / 1000)).toFixed(3);
    const rows = [
      `${'process'.padEnd(26)} ${'n'.padStart(3)} ${'RSS MiB first->last'.padStart(19)} ${'mean'.padStart(7)} ${'floor MiB'.padStart(15)} ${'floor'.padStart(7)} ${'peak MiB'.padStart(15)}  ${'anon'.padStart(7)} ${'file'.padStart(7)}  ${'fds first->last'.padStart(15)} ${'change'.padStart(7)}  ${'CPU-s/1k'.padStart(8)}  flat`,
    ];
    const series: string[] = [];
    const probeRows: string[] = [];
    let flat = true;
    for (const c of components) {
      const all = samples.get(c.id)!;
      const s = all.filter((x) => x.at >= warmup);
      const restarted = new Set(all.map((x) => x.pid)).size > 1;
      const j = judge({ rss: s.map((x) => x.rssKiB / 1024), fds: s.map((x) => x.fds) }, restarted);
      const anon = drift(s.map((x) => x.anonKiB / 1024));
      const file = drift(s.map((x) => x.fileKiB / 1024));
      flat &&= j.flat;
      const range = (d: { first: number; last: number }): string => `${d.first.toFixed(1)}->${d.last.toFixed(1)}`;
      rows.push(
        `${c.id.padEnd(26)} ${String(j.n).padStart(3)} ${range(j.rss).padStart(19)} ${pct(j.rss.changePct).padStart(7)} ${range(j.floor).padStart(15)} ${pct(j.floor.changePct).padStart(7)} ${range(j.peak).padStart(15)}  ${pct(anon.changePct).padStart(7)} ${pct(file.changePct).padStart(7)}  ${`${j.fds.first.toFixed(0)}->${j.fds.last.toFixed(0)}`.padStart(15)} ${pct(j.fds.changePct).padStart(7)}  ${perK(w0.cpu.get(c.id), end.cpu.get(c.id)).padStart(8)}  ${j.flat ? 'yes' : `NO (${j.why.join(', ')})`}`,
      );
      // about one point a minute, warm-up included (marked |)
      const step = Math.max(1, Math.round(60 / sampleSeconds));
      const points = all.filter((_, i) => i % step === 0);
      const cut = points.findIndex((x) => x.at >= warmup);
      const text = points.map((x, i) => `${i === cut ? '| ' : ''}${(x.rssKiB / 1024).toFixed(0)}/${x.fds}`);
      series.push(`  ${c.id}: ${text.join(' ')}`);
      const pr = probes.get(c.id)!;
      if (pr.start && pr.end) {
        const d = (a: number, b: number): string => `${a.toFixed(1)}->${b.toFixed(1)} (${pct(((b - a) / a) * 100)})`;
        probeRows.push(
          `  ${c.id.padEnd(26)} heap used ${d(pr.start.heapUsed, pr.end.heapUsed)}, external ${d(pr.start.external, pr.end.external)}, RSS right after ${d(pr.start.rss, pr.end.rss)}`,
        );
      } else if (probe) probeRows.push(`  ${c.id.padEnd(26)} not read: ${pr.error ?? 'the process was gone or the run ended early'}`);
    }
    const perMinute = minuteSeries(traffic.seconds, started);
    process.stdout.write(
      `\n${rows.join('\n')}\n\nRSS MiB/fds about every minute from the start of traffic (judged from the mark |):\n${series.join('\n')}\n` +
        `  traffic (answered req/s, p99 ms): ${perMinute}\n` +
        (probeRows.length ? `\nlive memory after a full GC (MiB), start -> end of the judged window:\n${probeRows.join('\n')}\n` : '') +
        '\n',
    );
    const held = achieved >= rate * 0.95;
    process.stdout.write(
      [
        `traffic: asked ${rate} req/s, achieved ${achieved.toFixed(0)} req/s after the warm-up${held ? '' : ' — NOT HELD (< 95 %)'}; HTTP ${totals.http.ok} ok, ${totals.http.failed} failed, ${totals.http.skipped ?? 0} not sent (${connections} x 4 waiting); echo ${totals.echo.bytesVerified} bytes verified, ${totals.echo.corrupted} corrupted, ${totals.echo.reconnects} reconnects`,
        `load generator: ${perK(w0.loadgenCpu, end.loadgenCpu)} CPU-s per 1k requests`,
        `load average: ${load0} at start, ${loadText()} at end`,
      ].join('\n') + '\n',
    );
    const ok = flat && held && totals.http.failed === 0 && totals.echo.corrupted === 0;
    say(
      ok
        ? 'PASS: every process flat (±5 %: mean and floor of RSS, mean of fds, last third against first third after the warm-up), the rate held, no failure, nothing corrupted'
        : 'FAIL: see above',
    );
    return ok ? 0 : 1;
  });
}

/** Answered requests per second and the worst second's p99, per minute of traffic. */
export function minuteSeries(seconds: readonly TrafficSecond[], started: number): string {
  const byMinute = new Map<number, TrafficSecond[]>();
  for (const s of seconds) {
    const m = Math.floor((s.at - started) / 60_000);
    byMinute.set(m, [...(byMinute.get(m) ?? []), s]);
  }
  return [...byMinute.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([, xs]) => `${Math.round(xs.reduce((a, x) => a + x.n, 0) / xs.length)}/${Math.max(...xs.map((x) => x.p99)).toFixed(0)}`)
    .join(' ');
}

if (require.main === module) runBenchmark('soak', main);
