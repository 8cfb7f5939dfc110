// `npm run bench -- soak [--minutes 2] [--rate 1000] [--connections 64] [--sample-seconds 5]
// [--warmup-seconds S] [--checkpoint-minutes M] [--no-heap-probe] [--no-canary] [--lab nmsk]`
//
// A soak in a demo lab (needs root, run it under the machine lock): HTTP GETs from the frontend to
// the backend through its waypoint at --rate per second over --connections kept-alive connections,
// plus a TCP stream to tcp-echo whose every byte is checked, for --minutes.
//
// The rule is judged at rest (support/soak-rest.ts): at checkpoints — the end of the warm-up
// (--warmup-seconds; 30 s, and 5 min for runs of 15 min or more), every --checkpoint-minutes (5,
// or 2 in runs under 15 min) and the end — the requests pause (the generator waits for those in
// flight and closes its connections; the echo stream runs on), the soak waits until every mesh
// process's fds and open connections hold still (3 readings 0.5 s apart, at most 20 s), then reads
// per process: the fds that are not an established TCP connection (stray), the connections a node
// proxy reports open and idle since a checkpoint ≥ 2 min earlier (stale), and, unless
// --no-heap-probe, the live heap and RSS right after a forced full collection (support/heap-probe.ts,
// through the inspector, which SIGUSR1 opens at the start in the throw-away lab). A process passes
// when, first checkpoint against last, the stray fds, the live heap and the RSS after the
// collection are each within ±5 %, no connection was stale, and it never restarted. Why at rest:
// under load a proxy's fds follow its open connections (rate x latency; the waypoint's upstream
// pool keeps what it needed in the last 60 s) and a collected heap carries the garbage not yet
// collected, both rising with the machine's load without a leak; at rest neither does, and a leak
// stays.
//
// A leak canary (unless --no-canary): a process beside the mesh that leaks one fd every 2 min,
// judged the same way; if it passes, the rule is blind and the run fails.
//
// Under load, every mesh process's RSS (anonymous and file-backed), open fds and CPU time are
// sampled about every --sample-seconds at a random point of each interval (a heap saws with a
// period of seconds: samples on a fixed beat alias with it) and shown per third (mean, floor,
// peak), not judged. The run also fails when the rate asked is not held (< 95 % answered after the
// warm-up, the pauses left out): a soak at a lower rate proves less. Requests the generator could
// not send (--connections x 4 already waiting) are counted as skipped, with the latency per minute.
// Bounded by --minutes (plus ~10 s per checkpoint); the lab is removed at the end, on failure and
// on Ctrl-C.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { benchParse } from './support/args';
import { labNodeAdmins } from '../lab/admin';
import { sleep } from '../lab/sys';
import { liveMemoryAfterGc, type LiveMemory } from './support/heap-probe';
import { liveProcess, loadText, runBenchmark, startTraffic, usage, withDemoLab, type TrafficSecond } from './support/resilience';
import {
  establishedSockets,
  judgeRest,
  parseProcNetTcp,
  settle,
  staleConnections,
  strayFds,
  strayKinds,
  type ConnectionRecord,
  type RestPoint,
} from './support/soak-rest';

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
  /** Time the checkpoints had the requests paused, until then. */
  readonly pausedMs: number;
  readonly cpu: Map<string, number>;
  loadgenCpu: number;
}

const waitMs = (ms: number): Promise<void> => sleep(Math.max(0, ms));

/** When the checkpoints fall, in seconds from the start of traffic: the end of the warm-up, every interval, the end. */
export function checkpointTimes(seconds: number, warmup: number, intervalSeconds: number): number[] {
  const at: number[] = [];
  for (let t = warmup; t <= seconds - intervalSeconds / 2; t += intervalSeconds) at.push(t);
  at.push(seconds);
  return at;
}

/** The default interval between checkpoints: 5 min, and 2 min in runs under 15 min. */
export function defaultCheckpointMinutes(minutes: number): number {
  return minutes >= 15 ? 5 : 2;
}

// The leak canary: a process that leaks one fd (of /dev/null) every LEAK_MS; the rule must fail it.
const CANARY = `
const fs = require('node:fs');
const leaked = [];
setInterval(() => leaked.push(fs.openSync('/dev/null', 'r')), Number(process.argv[1]));
`;
const CANARY_LEAK_MS = 120_000;

/** Pooled connections close after 60 s idle (the waypoint's upstream pool): older idle ones are stale. */
const STALE_AFTER_S = 120;

interface Tracked {
  readonly id: string;
  readonly pid: () => number | undefined;
  /** The connections the process reports open (node proxies), or undefined. */
  readonly connections?: () => Promise<ConnectionRecord[]>;
  /** Probe its heap after a full GC (the mesh's Node processes; not the canary). */
  readonly probe: boolean;
}

async function main(): Promise<number> {
  const { values } = benchParse({
    args: process.argv.slice(2),
    options: {
      minutes: { type: 'string' },
      rate: { type: 'string' },
      connections: { type: 'string' },
      'sample-seconds': { type: 'string' },
      'warmup-seconds': { type: 'string' },
      'checkpoint-minutes': { type: 'string' },
      'no-heap-probe': { type: 'boolean' },
      'no-canary': { type: 'boolean' },
      lab: { type: 'string' },
    },
  });
  const minutes = Number(values.minutes ?? 2);
  const rate = Number(values.rate ?? 1000);
  const connections = Number(values.connections ?? 64);
  const sampleSeconds = Number(values['sample-seconds'] ?? 5);
  const warmup = Number(values['warmup-seconds'] ?? defaultWarmupSeconds(minutes));
  const interval = Number(values['checkpoint-minutes'] ?? defaultCheckpointMinutes(minutes)) * 60;
  const probe = !values['no-heap-probe'];
  const canary = !values['no-canary'];
  const lab = values.lab ?? 'nmsk';
  if (!(minutes > 0) || ![rate, connections, sampleSeconds, warmup].every((v) => Number.isInteger(v) && v > 0)) {
    throw new Error('--minutes takes a positive number; --rate, --connections, --sample-seconds and --warmup-seconds positive integers');
  }
  if (!(interval >= STALE_AFTER_S)) throw new Error(`--checkpoint-minutes takes ${STALE_AFTER_S / 60} or more (pooled connections may idle 60 s)`);
  if (warmup >= minutes * 60 * 0.75) throw new Error(`--warmup-seconds ${warmup} leaves too little of a ${minutes}-minute run to judge`);
  const seconds = Math.round(minutes * 60);
  const cpTimes = checkpointTimes(seconds, warmup, interval);
  if (cpTimes.length < 2) throw new Error(`a ${minutes}-minute run with ${warmup} s of warm-up has room for one checkpoint: ask more minutes`);
  const load0 = loadText();
  let canaryChild: ChildProcess | undefined;
  const stopCanary = (): void => void canaryChild?.kill('SIGKILL');
  return withDemoLab(
    lab,
    say,
    async ({ topo, fe, components }) => {
      say(
        `${seconds} s at ${rate} req/s over ${connections} connections; sampling ${components.map((c) => c.id).join(', ')} about every ${sampleSeconds} s; ` +
          `checkpoints at rest at ${cpTimes.map((t) => `${t} s`).join(', ')} (the first ${warmup} s are warm-up)${probe ? ', each with the live memory after a full GC' : ''}${canary ? '; a leak canary (one fd per 2 min) beside them' : ''}`,
      );
      // the inspectors are opened now, so that their listening socket is in every checkpoint's fds
      if (probe) for (const c of components) openInspector(liveProcess(topo, c)?.pid);
      const admins = new Map((labNodeAdmins(lab) ?? []).map((a) => [a.name, a]));
      const tracked: Tracked[] = components.map((c) => {
        const admin = c.name === 'node-proxy' ? admins.get(c.place) : undefined;
        return {
          id: c.id,
          pid: () => liveProcess(topo, c)?.pid,
          probe,
          connections: admin && (async () => JSON.parse((await admin.get('/connections')).body) as ConnectionRecord[]),
        };
      });
      if (canary) {
        canaryChild = spawn(process.execPath, ['-e', CANARY, String(CANARY_LEAK_MS)], { stdio: 'ignore' });
        const pid = canaryChild.pid;
        tracked.push({ id: 'leak-canary (must fail)', pid: () => pid, probe: false });
      }
      // the traffic outlasts the run, so the last checkpoint still pauses it
      const traffic = startTraffic(topo, fe, { rate, connections, seconds: seconds + cpTimes.length * 60 + 60 });
      const started = Date.now();
      const samples = new Map<string, Sample[]>(components.map((c) => [c.id, []]));
      const rest = new Map<string, RestPoint[]>(tracked.map((t) => [t.id, []]));
      const seen = new Map<string, { at: number; records: ConnectionRecord[] }[]>(tracked.map((t) => [t.id, []]));
      const probeErrors: string[] = [];
      let stopped = false;
      void traffic.done.then(() => (stopped = true));
      let pausedMs = 0;
      let warm: Window | undefined;
      let end: Window | undefined;

      const window = (): Window => {
        const cpu = new Map<string, number>();
        for (const c of components) {
          const p = liveProcess(topo, c);
          const u = p && usage(p.pid);
          if (u) cpu.set(c.id, u.cpuSeconds);
        }
        const lg = traffic.pid ? usage(traffic.pid) : undefined;
        return { okAt: traffic.totals().http.ok, at: Date.now(), pausedMs, cpu, loadgenCpu: lg?.cpuSeconds ?? Number.NaN };
      };

      // pause the requests, wait until every process's fds and open connections hold still, read them at rest
      const checkpoint = async (): Promise<void> => {
        const t0 = Date.now();
        const inflight = await traffic.pause();
        const readAll = async () => {
          const out = new Map<string, { pid?: number; fds: number; records?: ConnectionRecord[] }>();
          for (const t of tracked) {
            const pid = t.pid();
            const u = pid === undefined ? undefined : usage(pid);
            // fds first: the admin request's own socket is closed by the next reading
            out.set(t.id, { pid, fds: u?.fds ?? Number.NaN, records: t.connections ? await t.connections().catch(() => undefined) : undefined });
          }
          return out;
        };
        const { value, settled } = await settle(readAll, (a, b) =>
          [...a.entries()].every(([id, x]) => {
            const y = b.get(id);
            return y !== undefined && y.fds === x.fds && y.records?.length === x.records?.length;
          }),
        );
        const at = (Date.now() - started) / 1000;
        // every process's fds and the lab's TCP sockets at once, before the heap probes connect
        const targets = new Map(tracked.map((t) => [t.id, fdTargets(value.get(t.id)?.pid)]));
        const tcp = labTcpStates(lab);
        for (const t of tracked) {
          const r = value.get(t.id);
          const pid = t.pid();
          if (!r || r.pid === undefined || pid !== r.pid) continue;
          const u = usage(pid);
          let mem: LiveMemory | undefined;
          if (t.probe) mem = await liveMemoryAfterGc(pid).catch((e: unknown) => void probeErrors.push(`${t.id}: ${(e as Error).message}`));
          const records = r.records ?? [];
          const earlier = seen
            .get(t.id)!
            .filter((x) => at - x.at >= STALE_AFTER_S)
            .pop();
          const stale = earlier ? staleConnections(earlier.records, records) : [];
          for (const c of stale) say(`stale connection on ${t.id}: ${JSON.stringify(c)}`);
          seen.get(t.id)!.push({ at, records });
          rest.get(t.id)!.push({
            at,
            pid,
            fds: targets.get(t.id)!.length,
            connections: establishedSockets(targets.get(t.id)!, tcp),
            records: r.records?.length,
            rssMiB: (u?.rssKiB ?? Number.NaN) / 1024,
            settled,
            stale: stale.length,
            heapUsedMiB: mem?.heapUsed,
            codeSpaceMiB: mem?.codeSpace,
            rssAfterGcMiB: mem?.rss,
            strayKinds: strayKinds(targets.get(t.id)!, tcp),
          });
        }
        say(
          `checkpoint at ${at.toFixed(0)} s: ${settled ? 'settled' : 'NOT settled within 20 s'} ${((Date.now() - t0) / 1000).toFixed(1)} s after the pause${inflight ? ` (${inflight} requests still in flight)` : ''}: ` +
            tracked.map((t) => `${t.id.split(' ')[0]} ${value.get(t.id)?.fds ?? '-'} fds/${value.get(t.id)?.records?.length ?? '-'} records`).join(', '),
        );
        traffic.resume();
        pausedMs += Date.now() - t0;
      };

      // one sample under load at a random point of each interval; the checkpoints in between
      let next = 0;
      for (let slot = 0; !stopped; ) {
        const due = cpTimes[next];
        const slotAt = started + (slot + Math.random()) * sampleSeconds * 1000;
        if (due !== undefined && slotAt >= started + due * 1000) {
          await waitMs(started + due * 1000 - Date.now());
          if (next === 0) warm = window();
          if (next === cpTimes.length - 1) end = window();
          await checkpoint();
          next++;
          if (next === cpTimes.length) break;
          slot = Math.ceil((Date.now() - started) / 1000 / sampleSeconds);
          continue;
        }
        await waitMs(slotAt - Date.now());
        for (const c of components) {
          const p = liveProcess(topo, c);
          const u = p && usage(p.pid);
          if (p && u) samples.get(c.id)!.push({ at: (Date.now() - started) / 1000, pid: p.pid, ...u });
        }
        slot++;
        await waitMs(started + slot * sampleSeconds * 1000 - Date.now());
      }
      end ??= window();
      await traffic.end();
      stopCanary();
      const totals = traffic.totals();
      const w0 = warm ?? { okAt: 0, at: started, pausedMs: 0, cpu: new Map<string, number>(), loadgenCpu: Number.NaN };
      const answered = end.okAt - w0.okAt;
      const loadedSeconds = (end.at - w0.at - (end.pausedMs - w0.pausedMs)) / 1000;
      const achieved = answered / loadedSeconds;
      const perK = (a: number | undefined, b: number | undefined): string =>
        a === undefined || b === undefined || !(answered > 0) ? '-' : ((b - a) / (answered / 1000)).toFixed(3);

      const range = (d: { first: number; last: number }, digits = 1): string => `${d.first.toFixed(digits)}->${d.last.toFixed(digits)}`;
      const loadRows = [
        `${'process'.padEnd(26)} ${'n'.padStart(3)} ${'RSS MiB mean'.padStart(13)} ${''.padStart(7)} ${'floor MiB'.padStart(13)} ${''.padStart(7)} ${'peak MiB'.padStart(13)} ${''.padStart(7)}  ${'fds mean'.padStart(9)} ${''.padStart(7)}  ${'CPU-s/1k'.padStart(8)}`,
      ];
      const restRows = [
        `${'process'.padEnd(26)} ${'n'.padStart(2)} ${'fds (conns)'.padStart(19)} ${'stray fds'.padStart(9)} ${''.padStart(7)} ${'heap MiB'.padStart(11)} ${''.padStart(7)} ${'RSS MiB'.padStart(11)} ${''.padStart(7)} ${'stale'.padStart(5)}  flat`,
      ];
      const series: string[] = [];
      const restSeries: string[] = [];
      let flat = true;
      let canaryCaught = !canary;
      for (const t of tracked) {
        const c = components.find((x) => x.id === t.id);
        if (c) {
          const all = samples.get(c.id)!;
          const s = all.filter((x) => x.at >= warmup);
          const m = drift(s.map((x) => x.rssKiB / 1024));
          const floor = floorDrift(s.map((x) => x.rssKiB / 1024));
          const peak = peakDrift(s.map((x) => x.rssKiB / 1024));
          const fds = drift(s.map((x) => x.fds));
          loadRows.push(
            `${c.id.padEnd(26)} ${String(s.length).padStart(3)} ${range(m).padStart(13)} ${pct(m.changePct).padStart(7)} ${range(floor).padStart(13)} ${pct(floor.changePct).padStart(7)} ${range(peak).padStart(13)} ${pct(peak.changePct).padStart(7)}  ${range(fds, 0).padStart(9)} ${pct(fds.changePct).padStart(7)}  ${perK(w0.cpu.get(c.id), end.cpu.get(c.id)).padStart(8)}`,
          );
          // about one point a minute, warm-up included (marked |)
          const step = Math.max(1, Math.round(60 / sampleSeconds));
          const points = all.filter((_, i) => i % step === 0);
          const cut = points.findIndex((x) => x.at >= warmup);
          series.push(`  ${c.id}: ${points.map((x, i) => `${i === cut ? '| ' : ''}${(x.rssKiB / 1024).toFixed(0)}/${x.fds}`).join(' ')}`);
        }
        const points = rest.get(t.id)!;
        const v = judgeRest(points);
        if (c) flat &&= v.flat;
        else canaryCaught = !v.flat;
        const first = points[0];
        const last = points[points.length - 1];
        const fdsText = first && last ? `${first.fds}(${first.connections})->${last.fds}(${last.connections})` : '-';
        const recs = (p: RestPoint): string => (p.records === undefined ? '' : `/${p.records}`);
        const opt = (d: { first: number; last: number; changePct: number } | undefined): string =>
          d ? `${range(d).padStart(11)} ${pct(d.changePct).padStart(7)}` : `${'-'.padStart(11)} ${''.padStart(7)}`;
        restRows.push(
          `${t.id.padEnd(26)} ${String(v.n).padStart(2)} ${fdsText.padStart(19)} ${range(v.strayFds, 0).padStart(9)} ${pct(v.strayFds.changePct).padStart(7)} ${opt(v.heapUsed)} ${opt(v.rssAfterGc)} ${String(v.stale).padStart(5)}  ${v.flat ? 'yes' : `NO (${v.why.join(', ')})`}${v.unsettled ? ` [${v.unsettled} unsettled]` : ''}`,
        );
        // what the stray fds were at the first checkpoint, and at any other where their number differs
        const kinds = (p: RestPoint): string =>
          Object.entries(p.strayKinds ?? {})
            .sort((a, b) => b[1] - a[1])
            .map(([k, n]) => `${n} ${k}`)
            .join(', ');
        if (first) restSeries.push(`  ${t.id}: stray at ${first.at.toFixed(0)} s: ${kinds(first)}`);
        for (const p of points.slice(1)) if (first && strayFds(p) !== strayFds(first)) restSeries.push(`  ${t.id}: stray at ${p.at.toFixed(0)} s: ${kinds(p)}`);
        restSeries.push(
          `  ${t.id}: ${points.map((p) => `${p.fds}/${p.connections}${recs(p)}${p.heapUsedMiB === undefined ? '' : `/${p.heapUsedMiB.toFixed(1)}(${(p.codeSpaceMiB ?? Number.NaN).toFixed(1)})/${(p.rssAfterGcMiB ?? Number.NaN).toFixed(0)}`}`).join(' ')}`,
        );
      }
      process.stdout.write(
        `\nunder load (shown, not judged: fds follow the connections open, RSS the garbage not yet collected), first -> last third after the warm-up:\n${loadRows.join('\n')}\n` +
          `\nRSS MiB/fds about every minute from the start of traffic (warm-up until the mark |):\n${series.join('\n')}\n` +
          `  traffic (answered req/s, p99 ms): ${minuteSeries(traffic.seconds, started)}\n` +
          `\nat rest (judged: the lower of the first two checkpoints -> the lower of the last two, ±5 %; stray fds = fds - established TCP connections (conns); heap and RSS right after a full GC):\n${restRows.join('\n')}\n` +
          `\ncheckpoints (fds/established TCP[/records]${probe ? '/heap MiB (of it code)/RSS MiB after GC' : ''}):\n${restSeries.join('\n')}\n` +
          (probeErrors.length ? `\nheap probe errors:\n  ${probeErrors.join('\n  ')}\n` : '') +
          '\n',
      );
      const held = achieved >= rate * 0.95;
      process.stdout.write(
        [
          `traffic: asked ${rate} req/s, achieved ${achieved.toFixed(0)} req/s after the warm-up, checkpoints' pauses (${((end.pausedMs - w0.pausedMs) / 1000).toFixed(0)} s) left out${held ? '' : ' — NOT HELD (< 95 %)'}; HTTP ${totals.http.ok} ok, ${totals.http.failed} failed, ${totals.http.skipped ?? 0} not sent (${connections} x 4 waiting); echo ${totals.echo.bytesVerified} bytes verified, ${totals.echo.corrupted} corrupted, ${totals.echo.reconnects} reconnects`,
          `load generator: ${perK(w0.loadgenCpu, end.loadgenCpu)} CPU-s per 1k requests`,
          `load average: ${load0} at start, ${loadText()} at end`,
        ].join('\n') + '\n',
      );
      if (!canaryCaught) say('the leak canary passed the rule: the rule is blind to a leak, so this run proves nothing');
      const ok = flat && canaryCaught && held && totals.http.failed === 0 && totals.echo.corrupted === 0 && probeErrors.length === 0;
      say(
        ok
          ? `PASS: every process flat at rest (±5 %: fds not held by a connection, live heap and RSS after a full GC, first against last checkpoint; no stale connection)${canary ? ', the leak canary caught' : ''}, the rate held, no failure, nothing corrupted`
          : 'FAIL: see above',
      );
      return ok ? 0 : 1;
    },
    stopCanary,
  );
}

/** The TCP sockets of the root netns and of every netns of the lab: inode -> state. */
function labTcpStates(lab: string): Map<string, string> {
  const read = (args: string[]): string => {
    try {
      return execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      return '';
    }
  };
  let text = read(['cat', '/proc/net/tcp', '/proc/net/tcp6']);
  for (const ns of readdirSync('/run/netns').filter((n) => n.startsWith(`nm-${lab}-`))) {
    text += read(['nsenter', `--net=/run/netns/${ns}`, 'cat', '/proc/net/tcp', '/proc/net/tcp6']);
  }
  return parseProcNetTcp(text);
}

/** What each fd of a process points at (`socket:[123]`, `/dev/null`, `pipe:[…]`). */
function fdTargets(pid: number | undefined): string[] {
  if (pid === undefined) return [];
  try {
    return readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
      try {
        return [readlinkSync(`/proc/${pid}/fd/${fd}`)];
      } catch {
        return [];
      }
    });
  } catch {
    return [];
  }
}

/** Opens a process's inspector (SIGUSR1) ahead of the first heap probe. */
function openInspector(pid: number | undefined): void {
  if (pid !== undefined) process.kill(pid, 'SIGUSR1');
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
