// A text summary of a V8 CPU profile (`node --cpu-prof`): the frames with the most self time, and
// self time grouped by where the code lives (the waypoint's modules, node's internals by area,
// dependencies, GC, idle) — the "flame graph in text" docs/waypoint.md quotes.
//
//   node dist/bench/support/cpu-profile.js FILE.cpuprofile [--top 25] [--from S] [--to S]
//
// --from/--to keep the samples taken in that window (seconds from the profile's start), e.g. the
// load phase without the process's start-up.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code lives, for the grouped view. */
export function area(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'gc';
  if (fn === '(idle)' || fn === '(program)') return fn;
  if (!url) return `native ${fn || '(anonymous)'}`;
  const m = /\/(waypoint|common|control|bench)\/(.+?)\.js$/.exec(url);
  if (m && !url.includes('node_modules')) return `nodemesh ${m[1]}/${m[2]}`;
  const dep = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (dep) return `dep ${dep[1]}`;
  const internal = /^node:internal\/(.+?)(?:\/[^/]+)?$/.exec(url) ?? /^node:(.+)$/.exec(url);
  if (internal) return `node ${internal[1]}`;
  return url;
}

export function summarise(p: Profile, top: number, fromS = 0, toS = Infinity): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let total = 0;
  let at = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    at += dt;
    if (at < fromS * 1e6 || at > toS * 1e6) continue;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt);
    total += dt;
  }
  const frames = new Map<string, number>();
  const areas = new Map<string, number>();
  let idle = 0;
  for (const [id, t] of self) {
    const n = byId.get(id)!;
    const f = n.callFrame;
    if (f.functionName === '(idle)') idle += t;
    const file = f.url.replace(/^.*\/(dist|node_modules)\//, '$1/');
    const key = `${f.functionName || '(anonymous)'} ${file ? `${file}:${f.lineNumber + 1}` : ''}`.trim();
    frames.set(key, (frames.get(key) ?? 0) + t);
    const a = area(f.url, f.functionName);
    areas.set(a, (areas.get(a) ?? 0) + t);
  }
  const busy = total - idle;
  const pct = (t: number): string => `${((100 * t) / Math.max(1, busy)).toFixed(1).padStart(5)}%`;
  const lines: string[] = [`busy ${(busy / 1e6).toFixed(2)} s of ${(total / 1e6).toFixed(2)} s sampled; shares of busy time`, '', 'self time by area:'];
  for (const [a, t] of [...areas]
    .filter(([a]) => a !== '(idle)')
    .sort((x, y) => y[1] - x[1])
    .slice(0, top))
    lines.push(`  ${pct(t)}  ${a}`);
  lines.push('', 'top frames by self time:');
  for (const [f, t] of [...frames]
    .filter(([f]) => !f.startsWith('(idle)'))
    .sort((x, y) => y[1] - x[1])
    .slice(0, top))
    lines.push(`  ${pct(t)}  ${f}`);
  return lines.join('\n');
}

if (require.main === module) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '25' }, from: { type: 'string', default: '0' }, to: { type: 'string' } },
  });
  if (positionals.length !== 1) {
    process.stderr.write('usage: node dist/bench/support/cpu-profile.js FILE.cpuprofile [--top N]\n');
    process.exit(2);
  }
  process.stdout.write(
    summarise(
      JSON.parse(readFileSync(positionals[0]!, 'utf8')) as Profile,
      Number(values.top),
      Number(values.from),
      values.to === undefined ? Infinity : Number(values.to),
    ) + '\n',
  );
}
