// `npm run bench -- soak [--minutes 2] [--rate 1000] [--connections 16] [--sample-seconds 10]
// [--warmup-seconds 30] [--lab nmsk]`
//
// A soak in a demo lab (needs root, run it under the machine lock): HTTP GETs from the frontend to
// the backend through its waypoint at --rate per second over --connections kept-alive connections,
// plus a TCP stream to tcp-echo whose every byte is checked, for --minutes. Every mesh process's
// RSS and open fds (the control plane, each node proxy, the waypoint) are sampled every
// --sample-seconds; after the warm-up, each must stay flat: the last third's mean within ±5 % of
// the first third's. Prints the achieved request rate, failures, bytes verified/corrupted and a
// row per process. Bounded by --minutes; the lab is removed at the end, on failure and on Ctrl-C.
import { parseArgs } from 'node:util';
import { assignRoles, type DemoRole } from '../lab/mesh/demo';
import { meshUp } from '../lab/mesh/up';
import { labUp } from '../lab/up';
import { sleep } from '../lab/sys';
import { liveProcess, loadText, meshComponents, removeLab, startTraffic, usage } from './support/resilience';

const say = (m: string): void => void process.stdout.write(`soak: ${m}\n`);

interface Sample {
  readonly at: number;
  readonly pid: number;
  readonly rssKiB: number;
  readonly fds: number;
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** First and last third of the samples after the warm-up, and their change in per cent. */
export function drift(values: readonly number[]): { first: number; last: number; changePct: number } {
  const third = Math.max(1, Math.floor(values.length / 3));
  const first = mean(values.slice(0, third));
  const last = mean(values.slice(-third));
  return { first, last, changePct: first === 0 ? 0 : ((last - first) / first) * 100 };
}

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
  const warmup = Number(values['warmup-seconds'] ?? 30);
  const lab = values.lab ?? 'nmsk';
  if (!(minutes > 0) || ![rate, connections, sampleSeconds, warmup].every((v) => Number.isInteger(v) && v > 0)) {
    throw new Error('--minutes takes a positive number; --rate, --connections, --sample-seconds and --warmup-seconds positive integers');
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    say('skipped: needs root (it builds a netns lab)');
    return 0;
  }
  let removing: Promise<void> | undefined;
  const finalDown = (): Promise<void> => (removing ??= removeLab(lab, say));
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      say(`${sig}: removing lab ${lab}`);
      void finalDown().finally(() => process.exit(130));
    });
  }
  await removeLab(lab, say);
  const load0 = loadText();
  try {
    say(`lab ${lab}: 2 nodes x 3 pods with the demo`);
    const { state: topo } = await labUp({ lab, nodes: 2, podsPerNode: 3 });
    await meshUp(topo, { mesh: true, demo: true, drive: { connections: 2, concurrency: 1, size: 0, timeoutMs: 10_000 } }, (m) => say(m));
    const fe = assignRoles(topo).find((r) => r.role === 'frontend') as DemoRole;
    const components = meshComponents(topo);
    const seconds = Math.round(minutes * 60);
    say(`${seconds} s at ${rate} req/s over ${connections} connections; sampling ${components.map((c) => c.id).join(', ')} every ${sampleSeconds} s`);
    const traffic = startTraffic(topo, fe, { rate, connections, seconds });
    const started = Date.now();
    const samples = new Map<string, Sample[]>(components.map((c) => [c.id, []]));
    let stopped = false;
    void traffic.done.then(() => (stopped = true));
    await sleep(warmup * 1000);
    const okAtWarmup = traffic.totals().http.ok;
    const warmAt = Date.now();
    while (!stopped && Date.now() - started < seconds * 1000) {
      for (const c of components) {
        const p = liveProcess(topo, c);
        const u = p && usage(p.pid);
        if (p && u) samples.get(c.id)!.push({ at: Date.now(), pid: p.pid, ...u });
      }
      await sleep(sampleSeconds * 1000);
    }
    const okAtEnd = traffic.totals().http.ok;
    const measuredMs = Date.now() - warmAt;
    await traffic.done;
    const totals = traffic.totals();
    const rows = [
      `${'process'.padEnd(26)} ${'samples'.padStart(7)} ${'RSS MiB first->last'.padStart(20)} ${'change'.padStart(8)} ${'fds first->last'.padStart(16)} ${'change'.padStart(8)}  flat`,
    ];
    let flat = true;
    for (const c of components) {
      const s = samples.get(c.id)!;
      const restarted = new Set(s.map((x) => x.pid)).size > 1;
      const rss = drift(s.map((x) => x.rssKiB / 1024));
      const fds = drift(s.map((x) => x.fds));
      const ok = !restarted && Math.abs(rss.changePct) <= 5 && Math.abs(fds.changePct) <= 5;
      flat &&= ok;
      rows.push(
        `${c.id.padEnd(26)} ${String(s.length).padStart(7)} ${`${rss.first.toFixed(1)}->${rss.last.toFixed(1)}`.padStart(20)} ${`${rss.changePct.toFixed(1)}%`.padStart(8)} ${`${fds.first.toFixed(0)}->${fds.last.toFixed(0)}`.padStart(16)} ${`${fds.changePct.toFixed(1)}%`.padStart(8)}  ${ok ? 'yes' : restarted ? 'NO (restarted)' : 'NO'}`,
      );
    }
    process.stdout.write(`\n${rows.join('\n')}\n\n`);
    process.stdout.write(
      [
        `traffic: asked ${rate} req/s, achieved ${((okAtEnd - okAtWarmup) / (measuredMs / 1000)).toFixed(0)} req/s after the warm-up; HTTP ${totals.http.ok} ok, ${totals.http.failed} failed; echo ${totals.echo.bytesVerified} bytes verified, ${totals.echo.corrupted} corrupted, ${totals.echo.reconnects} reconnects`,
        `load average: ${load0} at start, ${loadText()} at end`,
      ].join('\n') + '\n',
    );
    const ok = flat && totals.http.failed === 0 && totals.echo.corrupted === 0;
    say(ok ? 'PASS: every process flat (±5 %), no failure, nothing corrupted' : 'FAIL: see above');
    return ok ? 0 : 1;
  } finally {
    await finalDown();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
