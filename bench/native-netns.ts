// Benchmark (not a test): connects per second from this process into another network namespace
// with the native addon's connectInNetns, against a plain net.connect made by a process that
// already lives in that netns (started with `ip netns exec`) — the best the kernel and Node can
// do for the same connect — in the same run.
//
//   node dist/bench/native-netns.js [--connects 5000] [--concurrency 1,16] [--rounds 3] [--pool-size 8]
//
// A throwaway netns `nm-bnetns-<pid>` (removed at the end, also on Ctrl-C) holds a listener
// (its own process, 32 ports) that accepts and closes. Each figure is connect + close of one connection,
// best of --rounds, for each concurrency; the ratio is connectInNetns / net.connect.
// --pool-size 0 turns off the workers' socket pools (every connect waits for the worker thread).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { parseArgs } from 'node:util';
import { closeNetnsWorkers, configureNetnsWorkers, connectInNetns } from '../native/netns';

const LISTENER = `
const net = require('net');
let up = 0;
for (let i = 0; i < 32; i++) {
  const srv = net.createServer((s) => { s.on('error', () => {}); s.destroy(); });
  srv.listen(7100 + i, '127.0.0.1', () => { if (++up === 32) process.stdout.write('ready\\n'); });
}
`;

// The reference: the same loop with net.connect, run inside the netns.
const REFERENCE = `
const net = require('net');
const [total, conc, port] = process.argv.slice(1).map(Number);
let started = 0, done = 0, failed = 0;
const t0 = process.hrtime.bigint();
const one = () => {
  if (started >= total) return;
  started++;
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('connect', () => { s.destroy(); next(); });
  s.on('error', () => { failed++; next(); });
};
const next = () => {
  if (++done === total) process.stdout.write(JSON.stringify({ perSec: total / (Number(process.hrtime.bigint() - t0) / 1e9), failed }));
  else one();
};
for (let i = 0; i < conc; i++) one();
`;

async function viaAddon(netnsPath: string, total: number, conc: number, port: number): Promise<{ perSec: number; failed: number }> {
  let started = 0;
  let failed = 0;
  const t0 = process.hrtime.bigint();
  const lane = async (): Promise<void> => {
    while (started < total) {
      started++;
      try {
        const s = await connectInNetns(netnsPath, { host: '127.0.0.1', port });
        s.destroy();
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: conc }, lane));
  return { perSec: total / (Number(process.hrtime.bigint() - t0) / 1e9), failed };
}

function reference(ns: string, total: number, conc: number, port: number): Promise<{ perSec: number; failed: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', REFERENCE, String(total), String(conc), String(port)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => {
      try {
        resolve(JSON.parse(out) as { perSec: number; failed: number });
      } catch {
        reject(new Error(`reference client exited ${code}: ${out}`));
      }
    });
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      connects: { type: 'string', default: '5000' },
      concurrency: { type: 'string', default: '1,16' },
      rounds: { type: 'string', default: '3' },
      'pool-size': { type: 'string', default: '8' },
    },
  });
  const total = Number(values.connects);
  const { poolSize } = configureNetnsWorkers({ poolSize: Number(values['pool-size']) });
  const levels = values.concurrency!.split(',').map(Number);
  const ns = `nm-bnetns-${process.pid}`;
  const netnsPath = `/run/netns/${ns}`;
  let listener: ChildProcess | undefined;
  const cleanup = (): void => {
    if (listener?.pid) listener.kill('SIGKILL');
    closeNetnsWorkers();
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      /* never made */
    }
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      cleanup();
      process.exit(130);
    });
  }
  try {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    // client-side TIME_WAIT sockets may be reused at once (loopback), so rounds do not run dry
    execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1']);
    listener = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', LISTENER], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      listener!.stdout!.once('data', () => resolve());
      listener!.once('exit', (code) => reject(new Error(`listener exited ${code}`)));
    });
    const rows: string[] = [];
    let run = 0;
    for (const conc of levels) {
      let addon = 0;
      let plain = 0;
      for (let r = 0; r < Number(values.rounds); r++) {
        // each run connects to a port of its own: no TIME_WAIT left over from the previous one
        const a = await viaAddon(netnsPath, total, conc, 7100 + (run++ % 32));
        const p = await reference(ns, total, conc, 7100 + (run++ % 32));
        if (a.failed || p.failed) throw new Error(`failed connects: addon ${a.failed}, net.connect ${p.failed}`);
        addon = Math.max(addon, a.perSec);
        plain = Math.max(plain, p.perSec);
        process.stderr.write(`c=${conc} round ${r + 1}: connectInNetns ${a.perSec.toFixed(0)}/s, net.connect ${p.perSec.toFixed(0)}/s\n`);
      }
      rows.push(
        `c=${String(conc).padEnd(4)} ${addon.toFixed(0).padStart(10)} ${(1e6 / addon).toFixed(1).padStart(8)} µs ${plain.toFixed(0).padStart(12)} ${(1e6 / plain).toFixed(1).padStart(8)} µs   ${(addon / plain).toFixed(2)}`,
      );
    }
    const kernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
    process.stdout.write(
      [
        `connect+close into a netns, ${total} per run, best of ${values.rounds}, worker pool ${poolSize}, Linux ${kernel}`,
        `       connectInNetns/s  per conn  net.connect/s  per conn   ratio`,
        ...rows,
        '',
      ].join('\n'),
    );
  } finally {
    cleanup();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/native-netns: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
