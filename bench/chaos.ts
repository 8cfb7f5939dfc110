// `npm run bench -- chaos [--seconds 120] [--max-seconds 3 x seconds] [--interval 8] [--rate 50]
// [--stop-ms 2000] [--grace-ms 3000] [--netem "delay 10ms 5ms loss 0.5%"|off] [--cert-ttl 60]
// [--seed N] [--lab nmch]`
//
// Chaos under traffic, in a demo lab (2 nodes x 3 pods, the backend behind its waypoint; needs
// root, run it under the machine lock): the frontend sends HTTP GETs to the backend and keeps a TCP
// stream to tcp-echo whose every byte is checked, while at random intervals a random mesh process —
// a node proxy, the waypoint or the control plane — is SIGKILLed (the lab's supervisor or
// controller restarts it) or SIGSTOPped for --stop-ms. First every component is hit both ways once
// (chaosPlan, shuffled), then at random until --seconds; the plan is finished even past --seconds
// (a slow machine), up to --max-seconds. The underlay has netem delay/loss on every
// node's link, workload certificates live --cert-ttl seconds (so they are renewed and expire under
// open streams), and tcpdump captures the underlay.
//
// Figures: per component, the events, how long it was down, the traffic's recovery time, and the
// failures accounted to it (a failure counts against a component when the request overlaps the
// component's down window plus --grace-ms); failures no component explains are UNACCOUNTED — the
// number that must be 0. Echo bytes verified and corrupted (must be 0); the marker the traffic
// sends found in the underlay capture (plaintext on the wire, must be 0). Bounded: --seconds of
// chaos; every kill waits at most 60 s for the component to return; the lab is removed at the end,
// on failure and on Ctrl-C.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchParse } from './support/args';
import { controlRootOf, meshPaths } from '../lab/mesh/paths';
import { readWaypointPods, type LabTopology } from '../lab/state';
import { sleep } from '../lab/sys';
import { labTimeout } from '../lab/time-scale';
import { netnsGet } from '../native/netns-http';
import { CONFIG_API_PORT, READY_PORT } from '../common/contracts/ports';
import { ensureTools } from './support/tools';
import {
  captureUnderlay,
  countInFile,
  liveProcess,
  loadText,
  PLAINTEXT_MARKER,
  runBenchmark,
  startTraffic,
  withDemoLab,
  type Component,
  type TrafficFailure,
} from './support/resilience';

const say = (m: string): void => void process.stdout.write(`chaos: ${m}\n`);

/** How long a killed or stopped component may take to answer its readiness check again (60 s, scaled on a slow machine). */
const BACK_WITHIN_MS = labTimeout(60_000);

interface ChaosEvent {
  readonly component: Component;
  readonly action: 'SIGKILL' | 'SIGSTOP';
  readonly at: number;
  /** When it answered its readiness check again (undefined: it did not within 60 s). */
  backAt?: number;
}

/** A small seeded PRNG (mulberry32), so a run can be repeated with --seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The guaranteed part of a run: every component SIGKILLed once and SIGSTOPped once, in an order
 * shuffled by `rnd` (never the same component twice in a row when another is left), so a run where
 * recovery is slow (a VM under TCG) still hits each of them both ways.
 */
export function chaosPlan<C>(components: readonly C[], rnd: () => number): { component: C; action: ChaosEvent['action'] }[] {
  const shuffled = (): C[] => {
    const xs = [...components];
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  };
  // two rounds: each component once per round, the second round with the other action
  const first = shuffled().map((component) => ({ component, action: rnd() < 0.5 ? ('SIGKILL' as const) : ('SIGSTOP' as const) }));
  const second = shuffled().map((component) => ({
    component,
    action: first.find((e) => e.component === component)!.action === 'SIGKILL' ? ('SIGSTOP' as const) : ('SIGKILL' as const),
  }));
  if (second.length > 1 && second[0]!.component === first[first.length - 1]!.component) [second[0], second[1]] = [second[1]!, second[0]!];
  return [...first, ...second];
}

/** Whether a component answers its readiness endpoint. */
async function isReady(topo: LabTopology, c: Component): Promise<boolean> {
  try {
    if (c.name === 'control-plane') {
      const ca = controlRootOf(meshPaths(topo.lab));
      return (await netnsGet(topo.control.netnsPath, topo.control.ip, CONFIG_API_PORT, '/healthz/ready', {}, 1500, ca)).status === 200;
    }
    // a node proxy in its node's netns; a waypoint in its pod's (not in the topology's pod list)
    const place = [...topo.nodes, ...topo.pods, ...readWaypointPods(topo.lab).map((w) => w.pod)].find((p) => p.name === c.place);
    if (!place) return false;
    return (await netnsGet(place.netnsPath, '127.0.0.1', READY_PORT, '/healthz/ready', {}, 1500)).status === 200;
  } catch {
    return false;
  }
}

async function waitBack(topo: LabTopology, c: Component, oldPid: number | undefined, deadlineMs: number): Promise<number | undefined> {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    const p = liveProcess(topo, c);
    if (p && p.pid !== oldPid && (await isReady(topo, c))) return Date.now();
    await sleep(100);
  }
  return undefined;
}

async function act(topo: LabTopology, c: Component, action: ChaosEvent['action'], stopMs: number): Promise<ChaosEvent> {
  const p = liveProcess(topo, c);
  const e: ChaosEvent = { component: c, action, at: Date.now() };
  if (!p) {
    e.backAt = await waitBack(topo, c, undefined, BACK_WITHIN_MS);
    return e;
  }
  if (action === 'SIGKILL') {
    process.kill(p.pid, 'SIGKILL');
    e.backAt = await waitBack(topo, c, p.pid, BACK_WITHIN_MS);
  } else {
    process.kill(p.pid, 'SIGSTOP');
    await sleep(stopMs);
    process.kill(p.pid, 'SIGCONT');
    e.backAt = await waitBack(topo, c, undefined, BACK_WITHIN_MS);
  }
  return e;
}

/**
 * Delay and loss on every node's underlay link: tc netem; on a kernel without sch_netem, the loss
 * alone with an nftables rule (random drop in the node's output and forward paths).
 */
function impairUnderlay(topo: LabTopology, netem: string): string {
  try {
    for (const n of topo.nodes) {
      execFileSync('ip', ['netns', 'exec', n.netns, 'tc', 'qdisc', 'replace', 'dev', n.underlayIfName, 'root', 'netem', ...netem.split(/\s+/)], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
    }
    return `netem ${netem}`;
  } catch (err) {
    const loss = /loss\s+([\d.]+)%/.exec(netem)?.[1];
    const why = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? (err as Error).message;
    if (!loss) return `none (tc netem failed: ${why})`;
    const perMille = Math.round(Number(loss) * 10);
    for (const n of topo.nodes) {
      const nft = (...args: string[]): void => void execFileSync('ip', ['netns', 'exec', n.netns, 'nft', ...args], { stdio: 'ignore' });
      nft('add', 'table', 'inet', 'nmchaos');
      for (const hook of ['output', 'forward']) {
        nft('add', 'chain', 'inet', 'nmchaos', hook, `{ type filter hook ${hook} priority 0; }`);
        nft('add', 'rule', 'inet', 'nmchaos', hook, 'oifname', n.underlayIfName, 'numgen', 'random', 'mod', '1000', '<', String(perMille), 'drop');
      }
    }
    return `loss ${loss}% by nftables, NO delay (tc netem failed: ${why}; this kernel has no sch_netem)`;
  }
}

interface Accounted {
  readonly byComponent: Map<string, TrafficFailure[]>;
  readonly unaccounted: TrafficFailure[];
}

/** Each failure against the first event whose down window (plus grace) its request overlaps. */
export function account(failures: readonly TrafficFailure[], events: readonly ChaosEvent[], graceMs: number, endMs: number): Accounted {
  const byComponent = new Map<string, TrafficFailure[]>();
  const unaccounted: TrafficFailure[] = [];
  for (const f of failures) {
    const e = events.find((x) => f.t <= (x.backAt ?? endMs) + graceMs && f.t + f.ms >= x.at);
    if (!e) unaccounted.push(f);
    else byComponent.set(e.component.id, [...(byComponent.get(e.component.id) ?? []), f]);
  }
  return { byComponent, unaccounted };
}

const median = (xs: number[]): number => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

async function main(): Promise<number> {
  const { values } = benchParse({
    args: process.argv.slice(2),
    options: {
      seconds: { type: 'string' },
      'max-seconds': { type: 'string' },
      interval: { type: 'string' },
      rate: { type: 'string' },
      'stop-ms': { type: 'string' },
      'grace-ms': { type: 'string' },
      netem: { type: 'string' },
      'cert-ttl': { type: 'string' },
      seed: { type: 'string' },
      lab: { type: 'string' },
    },
  });
  const seconds = Number(values.seconds ?? 120);
  const maxSeconds = Number(values['max-seconds'] ?? seconds * 3);
  const interval = Number(values.interval ?? 8);
  const rate = Number(values.rate ?? 50);
  const stopMs = Number(values['stop-ms'] ?? 2000);
  const graceMs = Number(values['grace-ms'] ?? labTimeout(3000));
  const certTtl = Number(values['cert-ttl'] ?? 60);
  const seed = Number(values.seed ?? Date.now() % 100_000);
  const netem = values.netem ?? 'delay 10ms 5ms loss 0.5%';
  const lab = values.lab ?? 'nmch';
  if (![seconds, maxSeconds, interval, rate, stopMs, graceMs, certTtl].every((v) => Number.isInteger(v) && v > 0) || seconds < 30 || maxSeconds < seconds) {
    throw new Error(
      '--seconds (at least 30), --max-seconds (at least --seconds), --interval, --rate, --stop-ms, --grace-ms and --cert-ttl take positive integers',
    );
  }
  const tmp = mkdtempSync(join(tmpdir(), 'nm-bench-chaos-'));
  const load0 = loadText();
  process.env.NODEMESH_LAB_CERT_TTL = String(certTtl);
  say(`workload certificates for ${certTtl} s; seed ${seed}`);
  const cleanup = (): void => rmSync(tmp, { recursive: true, force: true });
  return withDemoLab(
    lab,
    say,
    async ({ topo, fe, components }) => {
      ensureTools({ tcpdump: 'tcpdump', tc: 'iproute2' }, say);
      const impairment = netem === 'off' ? 'none' : impairUnderlay(topo, netem);
      say(`underlay impairment on every node's link: ${impairment}`);
      say(`components: ${components.map((c) => c.id).join(', ')}`);
      const pcap = join(tmp, 'underlay.pcap');
      const capture = captureUnderlay(topo, pcap);
      await sleep(1000);
      // the traffic runs until the chaos is over (ended then), at most --max-seconds and a tail
      const traffic = startTraffic(topo, fe, { rate, connections: 4, seconds: maxSeconds + 15 });
      const started = Date.now();
      const rnd = random(seed);
      const events: ChaosEvent[] = [];
      await sleep(5000);
      // first the plan (every component both ways), then every component in turn, in a fresh
      // random order each round, so each gets its share
      const plan = chaosPlan(components, rnd);
      let order: Component[] = [];
      const elapsed = (): number => (Date.now() - started) / 1000;
      while (plan.length > 0 ? elapsed() < maxSeconds - 10 : elapsed() < seconds - 10) {
        let next = plan.shift();
        if (!next) {
          if (order.length === 0) {
            order = [...components];
            for (let i = order.length - 1; i > 0; i--) {
              const j = Math.floor(rnd() * (i + 1));
              [order[i], order[j]] = [order[j]!, order[i]!];
            }
          }
          next = { component: order.shift()!, action: rnd() < 0.5 ? 'SIGKILL' : 'SIGSTOP' };
        }
        const { component: c, action } = next;
        const e = await act(topo, c, action, stopMs);
        events.push(e);
        say(`${action} ${c.id}: back after ${e.backAt ? `${((e.backAt - e.at) / 1000).toFixed(1)} s` : `NEVER (${BACK_WITHIN_MS / 1000} s)`}`);
        await sleep(interval * 1000 * (0.7 + 0.6 * rnd()));
      }
      const missed = plan.map((x) => `${x.action} ${x.component.id}`);
      await traffic.end();
      const endMs = Date.now();
      await capture.stop();
      const totals = traffic.totals();
      const { byComponent, unaccounted } = account(traffic.failures, events, graceMs, endMs);
      const plain = countInFile(pcap, PLAINTEXT_MARKER);

      const rows: string[] = [];
      rows.push(
        `${'component'.padEnd(26)} ${'action'.padEnd(8)} ${'events'.padStart(6)} ${'down med/max s'.padStart(15)} ${'recovery med/max s'.padStart(19)} ${'failures'.padStart(9)}`,
      );
      for (const c of components) {
        for (const action of ['SIGKILL', 'SIGSTOP'] as const) {
          const es = events.filter((e) => e.component.id === c.id && e.action === action);
          if (es.length === 0) continue;
          const down = es.map((e) => ((e.backAt ?? endMs) - e.at) / 1000);
          // recovery: until the component is back and the last failure it explains has ended
          const fails = byComponent.get(c.id) ?? [];
          const recovery = es.map((e) => {
            const mine = fails.filter((f) => f.t <= (e.backAt ?? endMs) + graceMs && f.t + f.ms >= e.at);
            return (Math.max(e.backAt ?? endMs, ...mine.map((f) => f.t + f.ms)) - e.at) / 1000;
          });
          const failed = fails.filter((f) => es.some((e) => f.t <= (e.backAt ?? endMs) + graceMs && f.t + f.ms >= e.at)).length;
          rows.push(
            `${c.id.padEnd(26)} ${action.padEnd(8)} ${String(es.length).padStart(6)} ${`${median(down).toFixed(1)}/${Math.max(...down).toFixed(1)}`.padStart(15)} ${`${median(recovery).toFixed(1)}/${Math.max(...recovery).toFixed(1)}`.padStart(19)} ${String(failed).padStart(9)}`,
          );
        }
      }
      const never = events.filter((e) => e.backAt === undefined).length;
      process.stdout.write(`\n${rows.join('\n')}\n\n`);
      process.stdout.write(
        [
          `traffic: ${((endMs - started) / 1000).toFixed(0)} s at ${rate} req/s: HTTP ${totals.http.ok} ok, ${totals.http.failed} failed; echo ${totals.echo.bytesVerified} bytes verified, ${totals.echo.reconnects} reconnects`,
          `failures not explained by a component being down (UNACCOUNTED): ${unaccounted.length}${unaccounted.length ? ` — ${JSON.stringify(unaccounted.slice(0, 5))}` : ''}`,
          `components that did not come back within ${BACK_WITHIN_MS / 1000} s: ${never}`,
          `planned events not run (--max-seconds ${maxSeconds} reached): ${missed.length ? missed.join(', ') : 'none'}`,
          `bytes corrupted: ${totals.echo.corrupted}`,
          `plaintext on the underlay: ${plain.hits} occurrence(s) of the traffic's marker in ${plain.bytes} captured bytes`,
          `underlay: ${impairment}; certificates: ${certTtl} s (renewed at half-life: ~${Math.floor(seconds / (certTtl / 2))} renewals per workload during the run)`,
          `load average: ${load0} at start, ${loadText()} at end; seed ${seed}`,
        ].join('\n') + '\n',
      );
      const ok = unaccounted.length === 0 && totals.echo.corrupted === 0 && plain.hits === 0 && never === 0 && missed.length === 0;
      say(
        ok
          ? 'PASS: every component SIGKILLed and SIGSTOPped, every failure accounted to a component that was down, nothing corrupted, no plaintext'
          : 'FAIL: see above',
      );
      return ok ? 0 : 1;
    },
    cleanup,
  );
}

if (require.main === module) runBenchmark('chaos', main);
