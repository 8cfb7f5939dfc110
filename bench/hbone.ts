// Benchmark (not a test): the HBONE tunnel against plain TCP on loopback, in the same run.
//
//   node dist/bench/hbone.js [--mib 256] [--rr 5000] [--cr 500] [--streams 4] [--sweep] [--rtt-ms 2]
//
// The destination side (HBONE server + TCP sink/echo upstreams) runs in a child process, as the
// destination node proxy would, so client and server do not share one event loop. Figures:
//   bulk     one stream (and --streams parallel ones) sending --mib MiB to a sink; MB/s
//   rr       request/response of 64 B on one open connection, --rr round trips; p50/p99 µs
//   cr       a new connection (tunnel stream) per 64 B request/response, --cr times; p50/p99 µs
// and the ratio HBONE/TCP for each. --sweep repeats bulk for several flow-control windows.
// --rtt-ms puts a delay line (a relay process that forwards every chunk after rtt/2 ms, each way,
// without limiting the bytes in flight) between the source and the destination, for TCP and
// HBONE alike, as a stand-in for the inter-node round trip (no netem on the build machine).
import { fork, type ChildProcess } from 'node:child_process';
import { connect as tcpConnect, createServer, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { HboneClient } from '../common/hbone/client';
import { HboneServer, allow } from '../common/hbone/server';
import { DEFAULT_WINDOWS, type WindowSettings } from '../common/hbone/settings';
import { createTestCa } from '../common/hbone/testing/pki';
import { connectUpstream } from '../common/hbone/upstream';
import { trustBundle } from '../common/identity/verify';
import { createLogger } from '../common/log';
import { benchParse } from './support/args';
import { quantile } from './support/figures';
import { sendBlocks } from './support/send';

interface ServerInit {
  readonly kind: 'init';
  readonly certChain: string;
  readonly key: string;
  readonly rootPem: string;
  readonly trustDomain: string;
  readonly windows: WindowSettings;
}

interface RelayInit {
  readonly kind: 'relay';
  readonly oneWayMs: number;
  readonly targets: readonly number[];
}

interface RelayReady {
  readonly kind: 'relay-ready';
  readonly ports: readonly number[];
}

interface ServerReady {
  readonly kind: 'ready';
  readonly hbonePort: number;
  readonly sinkPort: number;
  readonly echoPort: number;
}

// ---------------------------------------------------------------------------------------------
// destination side (child process)

async function listenTcp(onSocket: (s: Socket) => void): Promise<number> {
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
    s.on('error', () => undefined);
    onSocket(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

async function destinationMain(): Promise<void> {
  const init = await new Promise<ServerInit>((r) => process.once('message', (m) => r(m as ServerInit)));
  // sink: count bytes until the client ends, then answer the count (8 bytes) and end
  const sinkPort = await listenTcp((s) => {
    let n = 0;
    s.on('data', (c: Buffer) => {
      n += c.length;
    });
    s.on('end', () => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(BigInt(n));
      s.end(b);
    });
  });
  const echoPort = await listenTcp((s) => s.pipe(s));
  const server = new HboneServer({
    credentials: { certChain: init.certChain, key: init.key, trustBundle: trustBundle(init.trustDomain, init.rootPem) },
    windows: init.windows,
    maxConcurrentStreams: 1000,
    logger: createLogger('bench-hbone-server', 'warn'),
    handler: async (r) => allow(await connectUpstream(r.target)),
  });
  const ep = await server.listen({ host: '127.0.0.1', port: 0 });
  const ready: ServerReady = { kind: 'ready', hbonePort: ep.port, sinkPort, echoPort };
  process.send?.(ready);
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------
// delay line (child process)

/** Forwards `from` to `to`, every chunk (and the end) `delayMs` after it arrived. */
function delayPipe(from: Socket, to: Socket, delayMs: number): void {
  const queue: { at: number; chunk: Buffer | null }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    timer = undefined;
    const now = performance.now();
    // Node timers fire in whole milliseconds: send what is due within the next one too, or a
    // chunk that arrived just after another would wait a full extra tick.
    while (queue.length > 0 && (queue[0]?.at ?? 0) <= now + 1) {
      const e = queue.shift();
      if (e?.chunk) to.write(e.chunk);
      else to.end();
    }
    const head = queue[0];
    if (head) timer = setTimeout(flush, Math.max(1, head.at - now));
  };
  const enqueue = (chunk: Buffer | null): void => {
    queue.push({ at: performance.now() + delayMs, chunk });
    timer ??= setTimeout(flush, delayMs);
  };
  from.on('data', (c: Buffer) => enqueue(c));
  from.on('end', () => enqueue(null));
  from.on('close', () => {
    if (!from.readableEnded) to.destroy();
  });
}

async function relayMain(): Promise<void> {
  const init = await new Promise<RelayInit>((r) => process.once('message', (m) => r(m as RelayInit)));
  const ports: number[] = [];
  for (const target of init.targets) {
    ports.push(
      await listenTcp((down) => {
        const up = tcpConnect({ host: '127.0.0.1', port: target, allowHalfOpen: true, noDelay: true });
        up.on('error', () => down.destroy());
        delayPipe(down, up, init.oneWayMs);
        delayPipe(up, down, init.oneWayMs);
      }),
    );
  }
  const ready: RelayReady = { kind: 'relay-ready', ports };
  process.send?.(ready);
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------
// source side

type Target = 'sink' | 'echo';
/** Opens a connection to the sink or the echo upstream (directly for TCP, through a tunnel for HBONE). */
type Opener = (target: Target) => Promise<Duplex>;
type Ports = Readonly<Record<Target, number>>;

function tcpOpener(ports: Ports): Opener {
  return (target) =>
    new Promise((resolve, reject) => {
      const s = tcpConnect({ host: '127.0.0.1', port: ports[target], allowHalfOpen: true, noDelay: true }, () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
}

function readAll(d: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    d.on('data', (c: Buffer) => parts.push(c));
    d.once('end', () => resolve(Buffer.concat(parts)));
    d.once('error', reject);
  });
}

/** Sends `bytes` to the sink over one stream; resolves with the bytes the sink counted. */
async function bulkOne(open: Opener, bytes: number, block: Buffer): Promise<number> {
  const d = await open('sink');
  const reply = readAll(d);
  await new Promise<void>((resolve, reject) => {
    d.once('error', reject);
    sendBlocks(d, block, bytes, resolve);
  });
  const count = Number((await reply).readBigUInt64BE(0));
  if (count !== bytes) throw new Error(`the sink counted ${count} bytes, ${bytes} were sent`);
  return count;
}

async function bulk(open: Opener, mib: number, streams: number): Promise<number> {
  const block = Buffer.alloc(64 * 1024, 0x5a);
  const per = Math.floor((mib * 1024 * 1024) / streams);
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: streams }, () => bulkOne(open, per, block)));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return (per * streams) / 1e6 / secs; // MB/s
}

/** p50 and p99 of nanosecond samples, in microseconds (0 without samples). */
function quantiles(samplesNs: number[]): { p50: number; p99: number } {
  const s = samplesNs.slice().sort((a, b) => a - b);
  const at = (q: number): number => (s.length ? quantile(s, q) : 0) / 1000;
  return { p50: at(0.5), p99: at(0.99) };
}

/** Sequential 64 B request/response on one connection. */
async function requestResponse(open: Opener, n: number): Promise<{ p50: number; p99: number }> {
  const d = await open('echo');
  const msg = Buffer.alloc(64, 0x61);
  const samples: number[] = [];
  await new Promise<void>((resolve, reject) => {
    let got = 0;
    let t0 = process.hrtime.bigint();
    d.once('error', reject);
    d.on('data', (c: Buffer) => {
      got += c.length;
      if (got < msg.length) return;
      got -= msg.length;
      samples.push(Number(process.hrtime.bigint() - t0));
      if (samples.length === n) {
        d.end();
        resolve();
        return;
      }
      t0 = process.hrtime.bigint();
      d.write(msg);
    });
    d.write(msg);
  });
  d.resume();
  return quantiles(samples);
}

/** A new connection per 64 B request/response (connection setup included). */
async function connectRequest(open: Opener, n: number): Promise<{ p50: number; p99: number }> {
  const msg = Buffer.alloc(64, 0x62);
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const d = await open('echo');
    const back = readAll(d);
    d.end(msg);
    const b = await back;
    if (b.length !== msg.length) throw new Error(`echo returned ${b.length} bytes`);
    samples.push(Number(process.hrtime.bigint() - t0));
  }
  return quantiles(samples);
}

async function startRelay(oneWayMs: number, targets: number[]): Promise<{ child: ChildProcess; ports: readonly number[] }> {
  const child = fork(__filename, ['--relay'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const init: RelayInit = { kind: 'relay', oneWayMs, targets };
  child.send(init);
  const ready = await new Promise<RelayReady>((resolve, reject) => {
    child.once('message', (m) => resolve(m as RelayReady));
    child.once('exit', (code) => reject(new Error(`the relay process exited with ${code}`)));
  });
  return { child, ports: ready.ports };
}

async function startDestination(
  windows: WindowSettings,
  ca: Awaited<ReturnType<typeof createTestCa>>,
): Promise<{ child: ChildProcess; ready: ServerReady; serverId: string }> {
  const creds = await ca.issue('bench', 'destination');
  const child = fork(__filename, ['--destination'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const init: ServerInit = { kind: 'init', certChain: creds.certChain, key: creds.key, rootPem: ca.bundle.pem, trustDomain: ca.trustDomain, windows };
  child.send(init);
  const ready = await new Promise<ServerReady>((resolve, reject) => {
    child.once('message', (m) => resolve(m as ServerReady));
    child.once('exit', (code) => reject(new Error(`the destination process exited with ${code}`)));
  });
  return { child, ready, serverId: creds.spiffeId };
}

export interface HboneBenchOptions {
  readonly mib: number;
  readonly rr: number;
  readonly cr: number;
  readonly streams: number;
  readonly sweep: boolean;
  /** Round trip added by a delay line between source and destination, ms (0: none). */
  readonly rttMs: number;
}

export async function runHboneBench(o: HboneBenchOptions): Promise<void> {
  const ca = await createTestCa('cluster.local');
  const source = await ca.issue('bench', 'source');
  const out = (line: string): void => {
    process.stdout.write(line + '\n');
  };

  // The tunnel goes through the delay line; its far end connects to the upstreams directly.
  const hboneOpener =
    (client: HboneClient, serverId: string, hbonePort: number, ports: Ports): Opener =>
    (target) =>
      client.open({
        source: { certChain: source.certChain, key: source.key },
        trustBundle: ca.bundle,
        destination: `127.0.0.1:${hbonePort}`,
        expectedIdentity: serverId,
        authority: `127.0.0.1:${ports[target]}`,
      });

  const windowsList: WindowSettings[] = o.sweep
    ? [
        { streamWindow: 65535, connectionWindow: 65535, maxFrameSize: 16384 },
        { streamWindow: 1 << 20, connectionWindow: 4 << 20, maxFrameSize: 16384 },
        { streamWindow: 4 << 20, connectionWindow: 16 << 20, maxFrameSize: 16384 },
        DEFAULT_WINDOWS,
        { streamWindow: 16 << 20, connectionWindow: 64 << 20, maxFrameSize: 256 * 1024 },
      ]
    : [DEFAULT_WINDOWS];

  const path = o.rttMs > 0 ? `loopback + ${o.rttMs} ms RTT delay line` : 'loopback';
  out(`# HBONE vs plain TCP on ${path} (node ${process.version}, ${o.mib} MiB bulk, ${o.rr} rr, ${o.cr} cr)`);
  for (const windows of windowsList) {
    const dest = await startDestination(windows, ca);
    const relay = o.rttMs > 0 ? await startRelay(o.rttMs / 2, [dest.ready.hbonePort, dest.ready.sinkPort, dest.ready.echoPort]) : undefined;
    const client = new HboneClient({ windows });
    try {
      const [hbonePort, sinkPort, echoPort] = (relay?.ports ?? [dest.ready.hbonePort, dest.ready.sinkPort, dest.ready.echoPort]) as [number, number, number];
      const tcp = tcpOpener({ sink: sinkPort, echo: echoPort });
      const hbone = hboneOpener(client, dest.serverId, hbonePort, { sink: dest.ready.sinkPort, echo: dest.ready.echoPort });
      await bulk(hbone, 16, 1); // warm-up: connection, JIT
      await bulk(tcp, 16, 1);
      const label = `windows stream=${windows.streamWindow} conn=${windows.connectionWindow} frame=${windows.maxFrameSize}`;
      out(`\n## ${label}`);
      const tcp1 = await bulk(tcp, o.mib, 1);
      const hb1 = await bulk(hbone, o.mib, 1);
      out(`bulk 1 stream      TCP ${tcp1.toFixed(0)} MB/s   HBONE ${hb1.toFixed(0)} MB/s   HBONE/TCP ${(hb1 / tcp1).toFixed(2)}`);
      if (o.sweep && windows !== DEFAULT_WINDOWS) continue;
      const tcpN = await bulk(tcp, o.mib, o.streams);
      const hbN = await bulk(hbone, o.mib, o.streams);
      out(`bulk ${o.streams} streams     TCP ${tcpN.toFixed(0)} MB/s   HBONE ${hbN.toFixed(0)} MB/s   HBONE/TCP ${(hbN / tcpN).toFixed(2)}`);
      const tcpRr = await requestResponse(tcp, o.rr);
      const hbRr = await requestResponse(hbone, o.rr);
      out(
        `rr 64B (µs)        TCP p50 ${tcpRr.p50.toFixed(0)} p99 ${tcpRr.p99.toFixed(0)}   HBONE p50 ${hbRr.p50.toFixed(0)} p99 ${hbRr.p99.toFixed(0)}   ratio p50 ${(hbRr.p50 / tcpRr.p50).toFixed(2)} p99 ${(hbRr.p99 / tcpRr.p99).toFixed(2)}`,
      );
      const tcpCr = await connectRequest(tcp, o.cr);
      const hbCr = await connectRequest(hbone, o.cr);
      out(
        `connect+rr (µs)    TCP p50 ${tcpCr.p50.toFixed(0)} p99 ${tcpCr.p99.toFixed(0)}   HBONE p50 ${hbCr.p50.toFixed(0)} p99 ${hbCr.p99.toFixed(0)}   ratio p50 ${(hbCr.p50 / tcpCr.p50).toFixed(2)} p99 ${(hbCr.p99 / tcpCr.p99).toFixed(2)}`,
      );
      out(`HBONE connections used by the pool: ${client.connectionCount()}`);
    } finally {
      client.destroy();
      dest.child.kill('SIGTERM');
      relay?.child.kill('SIGTERM');
    }
  }
}

/** A positive number option, or its default. */
function positive(name: string, value: string | undefined, dflt: number): number {
  if (value === undefined) return dflt;
  const v = Number(value);
  if (Number.isFinite(v) && v > 0) return v;
  process.stderr.write(`bench hbone: --${name} needs a positive number (got ${value})\n`);
  process.exit(2);
}

if (require.main === module) {
  const { values: o } = benchParse({
    options: {
      mib: { type: 'string', default: '256' },
      rr: { type: 'string', default: '5000' },
      cr: { type: 'string', default: '500' },
      streams: { type: 'string', default: '4' },
      sweep: { type: 'boolean' },
      'rtt-ms': { type: 'string' },
      // the benchmark's own child processes
      destination: { type: 'boolean' },
      relay: { type: 'boolean' },
    },
  });
  const run = o.destination
    ? destinationMain()
    : o.relay
      ? relayMain()
      : runHboneBench({
          mib: positive('mib', o.mib, 256),
          rr: positive('rr', o.rr, 5000),
          cr: positive('cr', o.cr, 500),
          streams: positive('streams', o.streams, 4),
          sweep: o.sweep === true,
          rttMs: positive('rtt-ms', o['rtt-ms'], 0),
        });
  run.catch((err: unknown) => {
    process.stderr.write(`hbone bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
