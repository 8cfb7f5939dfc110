// Benchmark: the workload API at scale over delta ADS, on loopback.
//
//   node dist/bench/workload-xds.js [--workloads 10000] [--services 1000] [--subscribers 100] [--changes 20]
//
// The control plane (store, translation, cache, plaintext xDS server) runs in a child process so
// its memory can be measured alone; the subscribers (real @grpc/grpc-js clients, one HTTP/2
// connection each) run in this process. Reported:
//   - translation time for the whole store
//   - full sync for one subscriber (subscribe -> every Address received)
//   - full sync for N subscribers at once
//   - a change to one Workload -> received by all N subscribers (p50 / p95 / max over --changes)
//   - the control plane's memory (RSS, heap) idle, and with N subscribers connected
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { Registry } from 'prom-client';
import { AggregatedDiscoveryServiceClient } from '../api/gen/envoy/service/discovery/v3/ads';
import { DeltaDiscoveryRequest, type DeltaDiscoveryResponse } from '../api/gen/envoy/service/discovery/v3/discovery';
import { startControlGrpc } from '../control/grpc';
import { MemoryStore } from '../control/store/base-store';
import { ADDRESS_TYPE_URL } from '../control/workload/publisher';
import { parseSizes } from './support/args';
import { mib as mibOf, msSince as ms, quantile } from './support/figures';
import { benchArgs, isServerProcess, ServerProcess, toParent } from './support/server-process';
import { Waiter } from './support/waiter';
import { DATAPLANE_MODE_LABEL } from '../common/contracts/labels';

const DEFAULT_SIZES = { workloads: 10_000, services: 1_000, subscribers: 100, changes: 20 };
type Sizes = typeof DEFAULT_SIZES;

const NAMESPACES = 10;
const ns = (i: number) => `bench-${i % NAMESPACES}`;

function workload(i: number, services: number, generation = 0): unknown {
  const svc = i % services;
  return {
    apiVersion: 'nodemesh.io/v1alpha1',
    kind: 'Workload',
    metadata: { name: `w-${i}`, namespace: ns(svc), labels: { app: `svc-${svc}`, version: `v${generation}` } },
    spec: { node: `node-${i % 50}`, serviceAccount: `sa-${svc}`, addresses: [`10.${100 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}`] },
  };
}

// ---- the control plane side (child process) --------------------------------------------------

type ServerMessage =
  | { kind: 'ready'; port: number; translateMs: number; memory: NodeJS.MemoryUsage }
  | { kind: 'changed'; name: string; applyMs: number }
  | { kind: 'memory'; memory: NodeJS.MemoryUsage; lastTranslateMs: number; cpuMs: number };

type ParentMessage = { kind: 'change'; index: number; generation: number } | { kind: 'memory' } | { kind: 'stop' };

async function serverMain(sizes: Sizes): Promise<void> {
  const send = (m: ServerMessage) => toParent(m);
  const store = new MemoryStore({ historyLimit: 100 });
  const docs: unknown[] = [];
  for (let n = 0; n < NAMESPACES; n++) {
    docs.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `bench-${n}`, labels: { [DATAPLANE_MODE_LABEL]: 'ambient' } } });
  }
  for (let s = 0; s < sizes.services; s++) {
    docs.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: `svc-${s}`, namespace: ns(s) },
      spec: {
        selector: { app: `svc-${s}` },
        ports: [
          { name: 'http', port: 80, targetPort: 8080 },
          { name: 'grpc', port: 9090 },
        ],
      },
    });
  }
  for (let i = 0; i < sizes.workloads; i++) docs.push(workload(i, sizes.services));
  await store.applyAll(docs);
  const grpcSide = await startControlGrpc({
    store,
    plaintext: { host: '127.0.0.1', port: 0 },
    registry: new Registry(),
    logger: pino({ level: 'warn' }),
  });
  const translateMs = grpcSide.publisher.lastTranslation?.millis ?? NaN;
  global.gc?.();
  send({ kind: 'ready', port: grpcSide.ports.plaintext!, translateMs, memory: process.memoryUsage() });
  process.on('message', (m: ParentMessage) => {
    if (m.kind === 'change') {
      const t = process.hrtime.bigint();
      void store
        .apply(workload(m.index, sizes.services, m.generation))
        .then(() =>
          send({ kind: 'changed', name: `Workload/${ns(m.index % sizes.services)}/w-${m.index}`, applyMs: Number(process.hrtime.bigint() - t) / 1e6 }),
        );
    } else if (m.kind === 'memory') {
      global.gc?.();
      const cpu = process.cpuUsage();
      send({
        kind: 'memory',
        memory: process.memoryUsage(),
        lastTranslateMs: grpcSide.publisher.lastTranslation?.millis ?? NaN,
        cpuMs: (cpu.user + cpu.system) / 1000,
      });
    } else if (m.kind === 'stop') {
      void grpcSide.stop().then(() => process.exit(0));
    }
  });
}

// ---- the subscribers (this process) -----------------------------------------------------------

class Subscriber {
  readonly versions = new Map<string, string>();
  private readonly client: AggregatedDiscoveryServiceClient;
  private readonly stream: grpc.ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;
  private readonly waiter = new Waiter('subscriber');

  constructor(address: string, id: number) {
    this.client = new AggregatedDiscoveryServiceClient(address, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1, // one connection per subscriber, like separate node proxies
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    });
    this.stream = this.client.deltaAggregatedResources();
    this.stream.on('data', (r: DeltaDiscoveryResponse) => {
      for (const res of r.resources) this.versions.set(res.name, res.version);
      for (const name of r.removedResources) this.versions.delete(name);
      this.stream.write(DeltaDiscoveryRequest.fromPartial({ typeUrl: r.typeUrl, responseNonce: r.nonce }));
      this.waiter.notify();
    });
    this.stream.on('error', (e) => this.waiter.fail(e));
    this.stream.write(DeltaDiscoveryRequest.fromPartial({ node: { id: `bench-node-${id}` }, typeUrl: ADDRESS_TYPE_URL }));
  }

  /** Resolves when `done()` holds (checked on every response). */
  until(done: () => boolean, timeoutMs: number): Promise<void> {
    return this.waiter.until(done, timeoutMs, () => ` (has ${this.versions.size})`);
  }

  close(): void {
    this.stream.cancel();
    this.client.close();
  }
}

function mib(n: number): string {
  return mibOf(n, 0);
}

function memory(m: NodeJS.MemoryUsage): string {
  return `RSS ${mib(m.rss)}, heap ${mib(m.heapUsed)}, external ${mib(m.external)}`;
}

async function main(): Promise<void> {
  const sizes = parseSizes('workload-xds', DEFAULT_SIZES, benchArgs());
  if (isServerProcess()) return serverMain(sizes);

  const total = sizes.workloads + sizes.services;
  console.log(`workload API over delta ADS: ${sizes.workloads} workloads, ${sizes.services} services, ${sizes.subscribers} subscribers`);
  const started = process.hrtime.bigint();
  const child = new ServerProcess<ServerMessage, ParentMessage>(__filename);
  const subscribers: Subscriber[] = [];
  try {
    const ready = await child.receive('ready');
    console.log(`  store load + first translation:   ${ms(started).toFixed(0)} ms (translation ${ready.translateMs.toFixed(0)} ms)`);
    console.log(`  control plane memory, idle:       ${memory(ready.memory)}`);
    child.send({ kind: 'memory' });
    const idle = await child.receive('memory');
    const address = `127.0.0.1:${ready.port}`;

    let t = process.hrtime.bigint();
    const one = new Subscriber(address, 0);
    await one.until(() => one.versions.size >= total, 60_000);
    console.log(`  full sync, 1 subscriber:          ${ms(t).toFixed(0)} ms (${one.versions.size} resources)`);
    one.close();

    t = process.hrtime.bigint();
    for (let i = 0; i < sizes.subscribers; i++) subscribers.push(new Subscriber(address, i + 1));
    await Promise.all(subscribers.map((s) => s.until(() => s.versions.size >= total, 300_000)));
    console.log(`  full sync, ${sizes.subscribers} subscribers at once: ${ms(t).toFixed(0)} ms`);

    child.send({ kind: 'memory' });
    const loaded = await child.receive('memory');
    console.log(`  control plane memory, ${sizes.subscribers} subscribers: ${memory(loaded.memory)}`);
    console.log(`  control plane CPU for both full syncs: ${(loaded.cpuMs - idle.cpuMs).toFixed(0)} ms (the subscribers share this process's other core)`);

    const latencies: number[] = [];
    const applies: number[] = [];
    for (let c = 0; c < sizes.changes; c++) {
      const index = (c * 7919) % sizes.workloads;
      const name = `Workload/${ns(index % sizes.services)}/w-${index}`;
      const before = subscribers.map((s) => s.versions.get(name));
      t = process.hrtime.bigint();
      child.send({ kind: 'change', index, generation: c + 1 });
      await Promise.all(subscribers.map((s, i) => s.until(() => s.versions.get(name) !== before[i], 30_000)));
      latencies.push(ms(t));
      applies.push((await child.receive('changed')).applyMs);
    }
    latencies.sort((a, b) => a - b);
    child.send({ kind: 'memory' });
    const after = await child.receive('memory');
    console.log(
      `  one change -> all ${sizes.subscribers} subscribers:   p50 ${quantile(latencies, 0.5).toFixed(1)} ms, p95 ${quantile(latencies, 0.95).toFixed(1)} ms, max ${latencies[latencies.length - 1]!.toFixed(1)} ms over ${sizes.changes} changes`,
    );
    applies.sort((a, b) => a - b);
    console.log(`    of which the store write:       p50 ${quantile(applies, 0.5).toFixed(1)} ms; last translation ${after.lastTranslateMs.toFixed(1)} ms`);
  } finally {
    for (const s of subscribers) s.close();
    await child.stop({ kind: 'stop' });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exitCode = 1;
});
