// Benchmark (not a test): two builds of the native HBONE engine (native/src/hbone_engine.cc)
// against each other, in one run, on loopback (candidate: the tree's build unless named; base: the
// candidate itself unless named, which shows the run's noise).
//
//   node dist/bench/hbone-native.js [--base /tmp/old/nodemesh_native.node] [--candidate PATH]
//                                   [--rounds 5] [--mib 512] [--streams 1,8] [--threads 0] [--rr 0]
//
// Each measurement is a child process loading one build (NODEMESH_NATIVE_ADDON): a native HBONE
// server in front of a TCP sink, and the native client tunnelling `--streams` captured connections
// to it (the client engine encrypts, the server engine decrypts), `--mib` MiB in all, the app
// writing 1 MiB at a time; with --rr N instead, N round trips of 64 B per stream through an echo
// upstream (per-message cost: wake-ups and system calls). Builds alternate within every round, so both see the same neighbours.
// Figures per build (medians over rounds): MB/s carried, and the process's CPU seconds per GB
// carried (user + system): the engine's threads alone (the byte path: TLS, HTTP/2, the socket
// calls), and the whole process (the app and sink in JavaScript add the same for both builds).
// The candidate/base ratios are what to read; absolute figures depend on the machine's load.
import { fork } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { allow } from '../common/hbone/server';
import { connectUpstream } from '../common/hbone/upstream';
import { createTestCa } from '../common/hbone/testing/pki';
import { createLogger } from '../common/log';
import { addonPath } from '../native/binding';
import { initNativeHbone } from '../native/hbone';
import { NativeHboneClient } from '../native/hbone-client';
import { NativeHboneServer } from '../native/hbone-server';
import { benchOptions } from './support/args';
import { sendBlocks } from './support/send';

interface Sample {
  /** Bulk: MB/s carried; rr: round trips per second. */
  readonly mbPerS: number;
  readonly cpuSPerGb: number;
  /** The engine's threads only (those that appeared when it started). */
  readonly engineCpuSPerGb: number;
}

/** CPU seconds of each of this process's threads, by thread id (schedstat: nanoseconds on a CPU). */
function threadCpu(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      out.set(tid, Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e9);
    } catch {
      // the thread ended
    }
  }
  return out;
}

const quiet = createLogger('bench', 'silent');

function listen(onSocket: (s: Socket) => void, pauseOnConnect = false): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true, pauseOnConnect }, (s) => {
    s.on('error', () => undefined);
    onSocket(s);
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ server, port: (server.address() as AddressInfo).port })));
}

/** `rr` > 0: that many 64 B request/response round trips on each of `streams` tunnels (an echo upstream) instead of bulk. */
async function measure(mibTotal: number, streams: number, rr: number): Promise<Sample> {
  const ca = await createTestCa('cluster.local');
  const serverCreds = await ca.issue('ns-b', 'sa-server');
  const clientCreds = await ca.issue('ns-a', 'sa-client');
  const before = new Set(threadCpu().keys());
  initNativeHbone();
  const engineThreads = [...threadCpu().keys()].filter((t) => !before.has(t));
  let received = 0;
  let done!: () => void;
  const allIn = new Promise<void>((r) => (done = r));
  const total = mibTotal * 1024 * 1024;
  const sink = await listen((s) => {
    if (rr > 0) s.pipe(s);
    else
      s.on('data', (c: Buffer) => {
        received += c.length;
        if (received >= total) done();
      });
  });
  const server = new NativeHboneServer({
    credentials: { certChain: serverCreds.certChain, key: serverCreds.key, trustBundle: ca.bundle },
    logger: quiet,
    handler: async () => allow(await connectUpstream({ host: '127.0.0.1', port: sink.port, family: 4 })),
  });
  const front = await listen((s) => server.serveConnection(s, 'bench'));
  const client = new NativeHboneClient({ logger: quiet });
  // the captured side of each app connection, as the node proxy holds it
  const captured: Socket[] = [];
  const capture = await listen((s) => captured.push(s), true);
  const apps: Socket[] = [];
  for (let i = 0; i < streams; i++) {
    const app = connect({ host: '127.0.0.1', port: capture.port, allowHalfOpen: true });
    app.on('error', () => undefined);
    apps.push(app);
  }
  while (captured.length < streams) await new Promise((r) => setTimeout(r, 5));
  for (const c of captured) {
    await client.tunnel(
      {
        source: { certChain: clientCreds.certChain, key: clientCreds.key },
        trustBundle: ca.bundle,
        destination: `127.0.0.1:${front.port}`,
        expectedIdentity: serverCreds.spiffeId,
        authority: `127.0.0.1:${sink.port}`,
      },
      c,
      { end: () => undefined },
    );
  }
  if (rr > 0) return roundTrips(apps, rr, engineThreads);
  const chunk = Buffer.alloc(1024 * 1024, 0x5a);
  const perStream = Math.floor(total / streams);
  const cpu0 = process.cpuUsage();
  const threads0 = threadCpu();
  const t0 = process.hrtime.bigint();
  for (const [i, app] of apps.entries()) sendBlocks(app, chunk, i === 0 ? total - perStream * (streams - 1) : perStream);
  await allIn;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const threads1 = threadCpu();
  const engineCpu = engineThreads.reduce((sum, t) => sum + (threads1.get(t) ?? 0) - (threads0.get(t) ?? 0), 0);
  for (const a of apps) a.destroy();
  client.close(0);
  await server.close(0);
  for (const l of [sink, front, capture]) l.server.close();
  const gb = total / 1e9;
  return { mbPerS: total / 1e6 / seconds, cpuSPerGb: (cpu.user + cpu.system) / 1e6 / gb, engineCpuSPerGb: engineCpu / gb };
}

/** Each app sends 64 B and waits for it to come back, `rr` times; per 1,000 round trips, CPU-s per "GB" is CPU-s per 1k. */
async function roundTrips(apps: Socket[], rr: number, engineThreads: string[]): Promise<Sample> {
  const msg = Buffer.alloc(64, 0x61);
  const cpu0 = process.cpuUsage();
  const threads0 = threadCpu();
  const t0 = process.hrtime.bigint();
  await Promise.all(
    apps.map(
      (app) =>
        new Promise<void>((resolve) => {
          let left = rr;
          let got = 0;
          app.on('data', (c: Buffer) => {
            got += c.length;
            if (got < msg.length) return;
            got -= msg.length;
            if (--left === 0) resolve();
            else app.write(msg);
          });
          app.write(msg);
        }),
    ),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const threads1 = threadCpu();
  const engineCpu = engineThreads.reduce((sum, t) => sum + (threads1.get(t) ?? 0) - (threads0.get(t) ?? 0), 0);
  for (const a of apps) a.destroy();
  const k = (rr * apps.length) / 1000;
  return { mbPerS: (rr * apps.length) / seconds, cpuSPerGb: (cpu.user + cpu.system) / 1e6 / k, engineCpuSPerGb: engineCpu / k };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function runChild(addon: string, mib: number, streams: number, threads: number, rr: number): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const child = fork(process.argv[1]!, ['--child', '--mib', String(mib), '--streams', String(streams), '--rr', String(rr)], {
      env: { ...process.env, NODEMESH_NATIVE_ADDON: addon, NODEMESH_HBONE_THREADS: String(threads) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let got: Sample | undefined;
    child.on('message', (m) => (got = m as Sample));
    child.on('exit', (code) => (got ? resolve(got) : reject(new Error(`the benchmark child for ${addon} exited ${code} without a figure`))));
  });
}

async function main(): Promise<void> {
  const v = benchOptions(['base', 'candidate', 'rounds', 'mib', 'streams', 'threads', 'rr'], ['child']);
  const values = { ...v, rounds: v.rounds ?? '5', mib: v.mib ?? '512', streams: v.streams ?? '1,8', threads: v.threads ?? '0', rr: v.rr ?? '0' };
  if (values.child) {
    const s = await measure(Number(values.mib), Number(values.streams), Number(values.rr));
    process.send!(s);
    process.exit(0);
  }
  // without --base, the tree's build against itself: the ratios then show the run's own noise
  const builds = { base: values.base ?? values.candidate ?? addonPath, candidate: values.candidate ?? addonPath };
  const rounds = Number(values.rounds);
  const threads = Number(values.threads);
  const streamList = values.streams.split(',').map(Number);
  const rr = Number(values.rr);
  const unit = rr > 0 ? { rate: 'round trips/s', cpu: 'CPU-s per 1k round trips' } : { rate: 'MB/s', cpu: 'CPU-s/GB' };
  console.log(
    `native HBONE engine, loopback, ${rr > 0 ? `${rr} round trips of 64 B per stream` : `${values.mib} MiB`} per measurement, ${rounds} rounds; base ${builds.base}, candidate ${builds.candidate}`,
  );
  for (const streams of streamList) {
    const got: Record<'base' | 'candidate', Sample[]> = { base: [], candidate: [] };
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 ? (['candidate', 'base'] as const) : (['base', 'candidate'] as const);
      for (const b of order) got[b].push(await runChild(builds[b], Number(values.mib), streams, threads, Number(values.rr)));
    }
    const med = (b: 'base' | 'candidate', f: (s: Sample) => number) => median(got[b].map(f));
    const range = (b: 'base' | 'candidate', f: (s: Sample) => number) =>
      `${Math.min(...got[b].map(f)).toPrecision(3)}–${Math.max(...got[b].map(f)).toPrecision(3)}`;
    const mb = (s: Sample) => s.mbPerS;
    const eng = (s: Sample) => s.engineCpuSPerGb;
    const all = (s: Sample) => s.cpuSPerGb;
    for (const b of ['base', 'candidate'] as const) {
      console.log(
        `${streams} stream(s) ${b.padEnd(9)}: ${med(b, mb).toFixed(0)} ${unit.rate} [${range(b, mb)}], engine ${med(b, eng).toFixed(4)} ${unit.cpu} [${range(b, eng)}], process ${med(b, all).toFixed(4)}`,
      );
    }
    console.log(
      `${streams} stream(s) candidate/base: ${(med('candidate', mb) / med('base', mb)).toFixed(2)}x ${unit.rate}, ${(med('candidate', eng) / med('base', eng)).toFixed(2)}x engine CPU, ${(med('candidate', all) / med('base', all)).toFixed(2)}x process CPU`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
