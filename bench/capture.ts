// Benchmark (not a test): what capture + passthrough costs an app, against the same pod with
// capture off, in the same run.
//
//   node dist/bench/capture.js [--cr 2000] [--concurrency 8] [--mib 256] [--rounds 2] [--log-level warn]
//
// A lab of its own ('nmbench', removed at the end): node1's proxy, a client in pod1-1 and servers
// in pod2-1 (another node, not enrolled). Each round measures pod1-1 not enrolled (direct), then
// enrolled (captured: connect4 -> 15001 -> the proxy -> upstream from pod1-1's netns). Figures:
//   cr    connections per second: connect, 64 B request, 64 B response, close; --cr connections
//         with --concurrency in flight
//   bulk  one connection sending --mib MiB to a sink that acknowledges at the end; MB/s
// Best of --rounds for each, and the ratio captured/direct.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cliEntry } from '../common/paths';
import { labDown } from '../lab/down';
import { spawnInLab } from '../lab/spawn';
import type { LabTopology } from '../lab/state';
import { labUp } from '../lab/up';
import { connectInNetns } from '../native/netns';
import { ADMIN_PORT, READY_PORT } from '../common/contracts/ports';

const LAB = 'nmbench';

const SERVER = `
const net = require('net');
net.createServer((s) => { s.on('data', (d) => s.write(d)); s.on('end', () => s.end()); s.on('error', () => {}); }).listen(8080);
net.createServer({ allowHalfOpen: true }, (s) => { let n = 0; s.on('data', (d) => (n += d.length)); s.on('end', () => s.end(String(n))); s.on('error', () => {}); }).listen(8081);
`;

const CLIENT = `
const net = require('net');
const [mode, host, a, b] = process.argv.slice(1);
const t0 = process.hrtime.bigint();
const secs = () => Number(process.hrtime.bigint() - t0) / 1e9;
if (mode === 'cr') {
  const total = Number(a), conc = Number(b), req = Buffer.alloc(64, 7);
  let started = 0, done = 0, failed = 0;
  const one = () => {
    if (started >= total) return;
    started++;
    const s = net.connect({ host, port: 8080 });
    let got = 0;
    s.on('connect', () => s.write(req));
    s.on('data', (d) => { got += d.length; if (got >= 64) s.end(); });
    s.on('close', () => { done++; if (got < 64) failed++; if (done === total) { console.log(JSON.stringify({ perSec: total / secs(), failed })); } else one(); });
    s.on('error', () => {});
  };
  for (let i = 0; i < conc; i++) one();
} else {
  const bytes = Number(a) * 1024 * 1024, chunk = Buffer.alloc(256 * 1024, 1);
  const s = net.connect({ host, port: 8081, allowHalfOpen: true });
  let left = bytes, reply = '';
  const pump = () => { while (left > 0) { const c = left >= chunk.length ? chunk : chunk.subarray(0, left); left -= c.length; if (!s.write(c)) return s.once('drain', pump); } s.end(); };
  s.on('connect', pump);
  s.on('data', (d) => (reply += d));
  s.on('end', () => console.log(JSON.stringify({ mbPerSec: bytes / 1e6 / secs(), acked: Number(reply) === bytes })));
}
`;

function run(topo: LabTopology, pod: string, args: string[]): Promise<Record<string, number | boolean>> {
  return new Promise((resolve, reject) => {
    const child = spawnInLab(topo, pod, [process.execPath, '-e', CLIENT, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => {
      try {
        resolve(JSON.parse(out.trim()) as Record<string, number | boolean>);
      } catch {
        reject(new Error(`client exited ${code}: ${out}`));
      }
    });
  });
}

async function httpGet(netnsPath: string, port: number, path: string): Promise<{ status: number; body: string }> {
  const s = await connectInNetns(netnsPath, { host: '127.0.0.1', port, timeoutMs: 2000 });
  return new Promise((resolve, reject) => {
    let t = '';
    s.on('data', (d: Buffer) => (t += d.toString()));
    s.on('error', reject);
    s.on('end', () => resolve({ status: Number(t.split(' ')[1]), body: t.split('\r\n\r\n').slice(1).join('') }));
    s.write(`GET ${path} HTTP/1.0\r\n\r\n`);
  });
}

async function until(what: string, fn: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      cr: { type: 'string', default: '2000' },
      concurrency: { type: 'string', default: '8' },
      mib: { type: 'string', default: '256' },
      rounds: { type: 'string', default: '2' },
      'log-level': { type: 'string', default: 'warn' },
    },
  });
  const dir = mkdtempSync(join(tmpdir(), 'nm-bench-'));
  const selection = join(dir, 'capture.json');
  const setMode = (mode: 'ambient' | 'none'): void => {
    writeFileSync(`${selection}.tmp`, JSON.stringify({ mode: 'none', workloads: { 'pod1-1': { mode } } }));
    renameSync(`${selection}.tmp`, selection);
  };
  setMode('none');
  await labDown(LAB);
  const { state: topo } = await labUp({ lab: LAB, nodes: 2, podsPerNode: 2 });
  const children: ChildProcess[] = [];
  const node1 = topo.nodes.find((n) => n.name === 'node1')!;
  const target = topo.pods.find((p) => p.name === 'pod2-1')!.ip;
  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    for (const c of children) if (c.pid) c.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    try {
      execFileSync(
        process.execPath,
        [cliEntry, 'lab', 'exec', '--lab', LAB, 'node1', '--', process.execPath, cliEntry, 'node-proxy', '--node', 'node1', '--lab', LAB, '--teardown'],
        {
          stdio: 'ignore',
          env: { ...process.env, NODEMESH_LOG_LEVEL: 'warn' },
        },
      );
    } finally {
      await labDown(LAB);
      rmSync(join('/run/nodemesh/node-proxy', `${LAB}-node1`), { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  };
  // Interrupted (Ctrl-C, or stdout closed by `| head`): still remove the lab and the pins.
  process.stdout.on('error', () => undefined);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      void cleanup().finally(() => process.exit(130));
    });
  }
  try {
    children.push(spawnInLab(topo, 'pod2-1', [process.execPath, '-e', SERVER], { stdio: 'ignore' }));
    const logFd = openSync(join(dir, 'node-proxy.log'), 'w');
    children.push(
      spawnInLab(topo, 'node1', [process.execPath, cliEntry, 'node-proxy', '--node', 'node1', '--lab', LAB, '--capture-config', selection], {
        stdio: ['ignore', logFd, logFd],
        env: { NODEMESH_LOG_LEVEL: values['log-level'] },
      }),
    );
    await until('node proxy ready', async () => (await httpGet(node1.netnsPath, READY_PORT, '/healthz/ready')).status === 200);
    const enrolled = async (): Promise<number> => (JSON.parse((await httpGet(node1.netnsPath, ADMIN_PORT, '/workloads')).body) as unknown[]).length;

    const best: Record<string, { cr: number; bulk: number }> = { direct: { cr: 0, bulk: 0 }, captured: { cr: 0, bulk: 0 } };
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const mode of ['direct', 'captured'] as const) {
        setMode(mode === 'captured' ? 'ambient' : 'none');
        await until(`pod1-1 ${mode}`, async () => (await enrolled()) === (mode === 'captured' ? 1 : 0));
        const cr = await run(topo, 'pod1-1', ['cr', target, values.cr!, values.concurrency!]);
        const bulk = await run(topo, 'pod1-1', ['bulk', target, values.mib!]);
        if (cr.failed !== 0 || bulk.acked !== true) throw new Error(`${mode}: failures (${JSON.stringify({ cr, bulk })})`);
        best[mode].cr = Math.max(best[mode].cr, cr.perSec as number);
        best[mode].bulk = Math.max(best[mode].bulk, bulk.mbPerSec as number);
        process.stderr.write(`round ${round + 1} ${mode}: ${(cr.perSec as number).toFixed(0)} conn/s, ${(bulk.mbPerSec as number).toFixed(0)} MB/s\n`);
      }
    }
    const kernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
    process.stdout.write(
      [
        `capture passthrough, pod1-1 -> pod2-1 (other node), Linux ${kernel}, best of ${values.rounds}, proxy log level ${values['log-level']}`,
        `                 direct      captured    captured/direct`,
        `conn/s (c=${values.concurrency})   ${best.direct.cr.toFixed(0).padStart(8)}    ${best.captured.cr.toFixed(0).padStart(8)}    ${(best.captured.cr / best.direct.cr).toFixed(2)}`,
        `bulk MB/s        ${best.direct.bulk.toFixed(0).padStart(8)}    ${best.captured.bulk.toFixed(0).padStart(8)}    ${(best.captured.bulk / best.direct.bulk).toFixed(2)}`,
        '',
      ].join('\n'),
    );
  } finally {
    await cleanup();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/capture: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
