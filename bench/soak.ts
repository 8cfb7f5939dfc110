// `npm run bench -- soak [--minutes 2] [--rate 1000] [--connections 16] [--sample-seconds 10]
// [--warmup-seconds S] [--lab nmsk]`
//
// A soak in a demo lab (needs root, run it under the machine lock): HTTP GETs from the frontend to
// the backend through its waypoint at --rate per second over --connections kept-alive connections,
// plus a TCP stream to tcp-echo whose every byte is checked, for --minutes. Every mesh process's
// RSS (anonymous and file-backed) and open fds (the control plane, each node proxy, the waypoint)
// are sampled every --sample-seconds.
//
// The rule: samples of the warm-up (the first --warmup-seconds of traffic; default 30 s, and 5 min
// for runs of 15 min or more) are not judged; after it, each process must stay flat: the mean of
// the last third of its samples within ±5 % of the mean of the first third, for RSS and for fds,
// and the process never restarted. The table also shows the spread (the sample furthest from the
// median) and the RSS split, so a change can be told apart: anonymous memory (heap, buffers)
// versus file-backed pages (the node binary's code, which the kernel may drop and fault back in),
// and the floor (10th percentile) of each third, which a heap sawtooth does not move but a leak does.
// Prints the achieved request rate, failures, bytes verified/corrupted and a row per process.
// Bounded by --minutes; the lab is removed at the end, on failure and on Ctrl-C.
import { parseArgs } from 'node:util';
import { sleep } from '../lab/sys';
import { liveProcess, loadText, runBenchmark, startTraffic, usage, withDemoLab } from './support/resilience';

const say = (m: string): void => void process.stdout.write(`soak: ${m}\n`);

interface Sample {
  readonly at: number;
  readonly pid: number;
  readonly rssKiB: number;
  readonly anonKiB: number;
  readonly fileKiB: number;
  readonly fds: number;
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** First and last third of the samples after the warm-up, and their change in per cent. */
export function drift(values: readonly number[]): { first: number; last: number; changePct: number } {
  const third = Math.max(1, Math.floor(values.length / 3));
  const first = mean(values.slice(0, third));
  const last = mean(values.slice(-third));
  return { first, last, changePct: first === 0 ? 0 : ((last - first) / first) * 100 };
}

/**
 * The floor of the first and last third (their 10th percentile) and its change in per cent: what
 * a garbage-collected process returns to between collections. A leak raises it; a heap sawtooth
 * (spikes before a major GC, caught or missed by a sample) moves the means but not the floor.
 * Shown to explain a verdict, not part of the rule.
 */
export function floorDrift(values: readonly number[]): { first: number; last: number; changePct: number } {
  const third = Math.max(1, Math.floor(values.length / 3));
  const p10 = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 10)] ?? 0;
  const first = p10(values.slice(0, third));
  const last = p10(values.slice(-third));
  return { first, last, changePct: first === 0 ? 0 : ((last - first) / first) * 100 };
}

/** The sample furthest from the median, in per cent of the median. */
export function spreadPct(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length % 2 ? s[s.length >> 1]! : (s[(s.length >> 1) - 1]! + s[s.length >> 1]!) / 2;
  return m === 0 ? 0 : (100 * Math.max(m - s[0]!, s[s.length - 1]! - m)) / m;
}

/** The default warm-up: 30 s, and 5 min for runs of 15 min or more. */
export function defaultWarmupSeconds(minutes: number): number {
  return minutes >= 15 ? 300 : 30;
}

const pct = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(1)}%`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      minutes: { type: 'string' },
      rate: { type: 'string' },
      connections: { type: 'string' },
      'sample-seconds': { type: 'string' },
      'warmup-seconds': { type: 'string' },
      lab: { type: 'string' },
    },
  });
  const minutes = Number(values.minutes ?? 2);
  const rate = Number(values.rate ?? 1000);
  const connections = Number(values.connections ?? 16);
  const sampleSeconds = Number(values['sample-seconds'] ?? 10);
  const warmup = Number(values['warmup-seconds'] ?? defaultWarmupSeconds(minutes));
  const lab = values.lab ?? 'nmsk';
  if (!(minutes > 0) || ![rate, connections, sampleSeconds, warmup].every((v) => Number.isInteger(v) && v > 0)) {
    throw new Error('--minutes takes a positive number; --rate, --connections, --sample-seconds and --warmup-seconds positive integers');
  }
  if (warmup >= minutes * 60 * 0.75) throw new Error(`--warmup-seconds ${warmup} leaves too little of a ${minutes}-minute run to judge`);
  const load0 = loadText();
  return withDemoLab(lab, say, async ({ topo, fe, components }) => {
    const seconds = Math.round(minutes * 60);
    say(
      `${seconds} s at ${rate} req/s over ${connections} connections; sampling ${components.map((c) => c.id).join(', ')} every ${sampleSeconds} s; the first ${warmup} s are warm-up`,
    );
    const traffic = startTraffic(topo, fe, { rate, connections, seconds });
    const started = Date.now();
    const samples = new Map<string, Sample[]>(components.map((c) => [c.id, []]));
    let stopped = false;
    void traffic.done.then(() => (stopped = true));
    let okAtWarmup = 0;
    let warmAt = 0;
    // samples from the start (the warm-up's are shown, not judged), until the traffic ends
    while (!stopped && Date.now() - started < seconds * 1000) {
      if (!warmAt && Date.now() - started >= warmup * 1000) {
        warmAt = Date.now();
        okAtWarmup = traffic.totals().http.ok;
      }
      for (const c of components) {
        const p = liveProcess(topo, c);
        const u = p && usage(p.pid);
        if (p && u) samples.get(c.id)!.push({ at: (Date.now() - started) / 1000, pid: p.pid, ...u });
      }
      await sleep(sampleSeconds * 1000);
    }
    const okAtEnd = traffic.totals().http.ok;
    const measuredMs = Date.now() - (warmAt || started);
    await traffic.done;
    const totals = traffic.totals();
    const rows = [
      `${'process'.padEnd(26)} ${'n'.padStart(3)} ${'RSS MiB first->last'.padStart(19)} ${'change'.padStart(7)} ${'spread'.padStart(6)} ${'floor'.padStart(7)}  ${'anon'.padStart(7)} ${'file'.padStart(7)}  ${'fds first->last'.padStart(15)} ${'change'.padStart(7)}  flat`,
    ];
    const series: string[] = [];
    let flat = true;
    for (const c of components) {
      const all = samples.get(c.id)!;
      const s = all.filter((x) => x.at >= warmup);
      const restarted = new Set(all.map((x) => x.pid)).size > 1;
      const rss = drift(s.map((x) => x.rssKiB / 1024));
      const anon = drift(s.map((x) => x.anonKiB / 1024));
      const file = drift(s.map((x) => x.fileKiB / 1024));
      const fds = drift(s.map((x) => x.fds));
      const ok = s.length >= 3 && !restarted && Math.abs(rss.changePct) <= 5 && Math.abs(fds.changePct) <= 5;
      flat &&= ok;
      rows.push(
        `${c.id.padEnd(26)} ${String(s.length).padStart(3)} ${`${rss.first.toFixed(1)}->${rss.last.toFixed(1)}`.padStart(19)} ${pct(rss.changePct).padStart(7)} ${`${spreadPct(s.map((x) => x.rssKiB)).toFixed(1)}%`.padStart(6)} ${pct(floorDrift(s.map((x) => x.rssKiB)).changePct).padStart(7)}  ${pct(anon.changePct).padStart(7)} ${pct(file.changePct).padStart(7)}  ${`${fds.first.toFixed(0)}->${fds.last.toFixed(0)}`.padStart(15)} ${pct(fds.changePct).padStart(7)}  ${ok ? 'yes' : restarted ? 'NO (restarted)' : s.length < 3 ? 'NO (too few samples)' : 'NO'}`,
      );
      // about one point a minute, warm-up included (marked |)
      const step = Math.max(1, Math.round(60 / sampleSeconds));
      const points = all.filter((_, i) => i % step === 0);
      const cut = points.findIndex((x) => x.at >= warmup);
      const text = points.map((x, i) => `${i === cut ? '| ' : ''}${(x.rssKiB / 1024).toFixed(0)}/${x.fds}`);
      series.push(`  ${c.id}: ${text.join(' ')}`);
    }
    process.stdout.write(
      `\n${rows.join('\n')}\n\nRSS MiB/fds about every minute from the start of traffic (judged from the mark |):\n${series.join('\n')}\n\n`,
    );
    process.stdout.write(
      [
        `traffic: asked ${rate} req/s, achieved ${((okAtEnd - okAtWarmup) / (measuredMs / 1000)).toFixed(0)} req/s after the warm-up; HTTP ${totals.http.ok} ok, ${totals.http.failed} failed; echo ${totals.echo.bytesVerified} bytes verified, ${totals.echo.corrupted} corrupted, ${totals.echo.reconnects} reconnects`,
        `load average: ${load0} at start, ${loadText()} at end`,
      ].join('\n') + '\n',
    );
    const ok = flat && totals.http.failed === 0 && totals.echo.corrupted === 0;
    say(ok ? 'PASS: every process flat (±5 %, last third against first third after the warm-up), no failure, nothing corrupted' : 'FAIL: see above');
    return ok ? 0 : 1;
  });
}

if (require.main === module) runBenchmark('soak', main);
