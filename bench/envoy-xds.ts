// Benchmark: Envoy xDS at scale over state-of-the-world ADS, on loopback.
//
//   node dist/bench/envoy-xds.js [--services 1000] [--workloads 10000] [--clients 100] [--changes 20]
//
// The control plane (store, Envoy translation, SotW ADS server on a plaintext port) runs in a
// child process so its memory can be measured alone; the clients (real @grpc/grpc-js streams, one
// HTTP/2 connection each, ACKing every response like Envoy) run in this process. Each client is a
// proxyless gRPC client: LDS and CDS wildcard (every api_listener and cluster), RDS and EDS for the
// 10 services it "calls" (always including svc-0, whose HTTPRoute changes). Reported:
//   - translation time for the whole store, and the resource counts
//   - full sync of 1 client and of N clients at once
//   - HTTPRoute change -> the last of N clients has received the new RouteConfiguration
//     (p50 / p95 / max over --changes)
//   - the control plane's memory idle and with N clients (per client)
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { Registry } from 'prom-client';
import { AggregatedDiscoveryServiceClient } from '../api/gen/envoy/service/discovery/v3/ads';
import { DiscoveryRequest, type DiscoveryResponse } from '../api/gen/envoy/service/discovery/v3/discovery';
import { EnvoyPublisher } from '../control/envoy/publisher';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL } from '../control/envoy/names';
import { MemoryStore } from '../control/store/base-store';
import { xdsMetrics } from '../control/xds/metrics';
import { SotwAdsServer } from '../control/xds/sotw-server';
import { DeltaAdsServer } from '../control/xds/delta-server';
import { adsImplementation, adsServiceDefinition } from '../control/xds/service';
import { parseSizes } from './support/args';
import { mib, msSince as ms, quantile } from './support/figures';
import { benchArgs, isServerProcess, ServerProcess, toParent } from './support/server-process';
import { Waiter } from './support/waiter';

const DEFAULT_SIZES = { services: 1000, workloads: 10_000, clients: 100, changes: 20 };
type Sizes = typeof DEFAULT_SIZES;

const NAMESPACES = 10;
const ns = (s: number) => `bench-${s % NAMESPACES}`;
const host = (s: number) => `svc-${s}.${ns(s)}.svc.cluster.local`;

function route(generation: number): unknown {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'svc-0', namespace: ns(0) },
    spec: {
      parentRefs: [{ name: 'svc-0', port: 80 }],
      rules: [
        { matches: [{ headers: [{ name: 'x-canary', value: 'true' }] }], backendRefs: [{ name: 'svc-1', namespace: ns(1), port: 80 }] },
        {
          timeouts: { request: `${generation + 1}s` },
          backendRefs: [
            { name: 'svc-0', port: 80, weight: 90 },
            { name: 'svc-10', port: 80, weight: 10 },
          ],
        },
      ],
    },
  };
}

// ---- the control plane side (child process) --------------------------------------------------

type ServerMessage =
  | { kind: 'ready'; port: number; translateMs: number; counts: Record<string, number>; memory: NodeJS.MemoryUsage }
  | { kind: 'changed'; applyMs: number }
  | { kind: 'memory'; memory: NodeJS.MemoryUsage; lastTranslateMs: number };
type ParentMessage = { kind: 'change'; generation: number } | { kind: 'memory' } | { kind: 'stop' };

async function serverMain(sizes: Sizes): Promise<void> {
  const send = (m: ServerMessage) => toParent(m);
  const store = new MemoryStore({ historyLimit: 100 });
  const docs: unknown[] = [];
  for (let n = 0; n < NAMESPACES; n++) docs.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `bench-${n}` } });
  for (let s = 0; s < sizes.services; s++) {
    docs.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: `svc-${s}`, namespace: ns(s) },
      spec: {
        selector: { app: `svc-${s}` },
        ports: [
          { name: 'http', port: 80, targetPort: 8080 },
          { name: 'grpc', port: 9090, appProtocol: 'grpc' },
        ],
      },
    });
  }
  for (let i = 0; i < sizes.workloads; i++) {
    const s = i % sizes.services;
    docs.push({
      apiVersion: 'nodemesh.io/v1alpha1',
      kind: 'Workload',
      metadata: { name: `w-${i}`, namespace: ns(s), labels: { app: `svc-${s}` } },
      spec: { node: `node-${i % 50}`, serviceAccount: `sa-${s}`, addresses: [`10.${100 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}`] },
    });
  }
  docs.push(route(0));
  await store.applyAll(docs);
  const logger = pino({ level: 'warn' });
  const publisher = new EnvoyPublisher(store, { logger });
  publisher.start();
  const metrics = xdsMetrics(new Registry());
  const sotw = new SotwAdsServer(publisher, { logger, metrics });
  const delta = new DeltaAdsServer(publisher, { logger, metrics });
  const server = new grpc.Server({ 'grpc.max_send_message_length': 256 * 1024 * 1024 });
  server.addService(adsServiceDefinition, adsImplementation({ sotw: sotw.handle, delta: delta.handle }));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const report = publisher.lastTranslation!;
  global.gc?.();
  send({ kind: 'ready', port, translateMs: report.millis, counts: report.counts, memory: process.memoryUsage() });
  process.on('message', (m: ParentMessage) => {
    if (m.kind === 'change') {
      const t = process.hrtime.bigint();
      void store.apply(route(m.generation)).then(() => send({ kind: 'changed', applyMs: Number(process.hrtime.bigint() - t) / 1e6 }));
    } else if (m.kind === 'memory') {
      global.gc?.();
      send({ kind: 'memory', memory: process.memoryUsage(), lastTranslateMs: publisher.lastTranslation?.millis ?? NaN });
    } else {
      sotw.closeAll();
      server.forceShutdown();
      publisher.stop();
      process.exit(0);
    }
  });
}

// ---- the clients (this process) ---------------------------------------------------------------

class Client {
  /** type URL -> last version_info received. */
  readonly versions = new Map<string, string>();
  readonly counts = new Map<string, number>();
  private readonly client: AggregatedDiscoveryServiceClient;
  private readonly stream: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
  private readonly waiter = new Waiter('client');

  constructor(address: string, id: number, sizes: Sizes) {
    this.client = new AggregatedDiscoveryServiceClient(address, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': 256 * 1024 * 1024,
    });
    this.stream = this.client.streamAggregatedResources();
    const called = [0, ...Array.from({ length: 9 }, (_, i) => 1 + ((id * 9 + i) % (sizes.services - 1)))];
    const names: Record<string, string[]> = {
      [LISTENER_TYPE_URL]: [],
      [CLUSTER_TYPE_URL]: [],
      [ROUTE_TYPE_URL]: called.map((s) => `${host(s)}:80`),
      [ENDPOINT_TYPE_URL]: called.map((s) => `outbound|80||${host(s)}`),
    };
    this.stream.on('data', (r: DiscoveryResponse) => {
      this.versions.set(r.typeUrl, r.versionInfo);
      this.counts.set(r.typeUrl, r.resources.length);
      this.stream.write(
        DiscoveryRequest.fromPartial({ typeUrl: r.typeUrl, versionInfo: r.versionInfo, responseNonce: r.nonce, resourceNames: names[r.typeUrl] }),
      );
      this.waiter.notify();
    });
    this.stream.on('error', (e) => this.waiter.fail(e));
    let first = true;
    for (const typeUrl of [CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL]) {
      this.stream.write(
        DiscoveryRequest.fromPartial({
          typeUrl,
          resourceNames: names[typeUrl],
          ...(first ? { node: { id: `proxyless~127.0.0.1~bench-${id}.bench-0~bench-0.svc.cluster.local` } } : {}),
        }),
      );
      first = false;
    }
  }

  until(done: () => boolean, timeoutMs: number): Promise<void> {
    return this.waiter.until(done, timeoutMs);
  }

  synced(): boolean {
    return this.versions.size === 4;
  }

  close(): void {
    this.stream.cancel();
    this.client.close();
  }
}

async function main(): Promise<void> {
  const sizes = parseSizes('envoy-xds', DEFAULT_SIZES, benchArgs());
  if (isServerProcess()) return serverMain(sizes);
  console.log(`Envoy xDS over SotW ADS: ${sizes.services} services (2 ports), ${sizes.workloads} endpoints, ${sizes.clients} clients`);
  const started = process.hrtime.bigint();
  const child = new ServerProcess<ServerMessage, ParentMessage>(__filename);
  const clients: Client[] = [];
  try {
    const ready = await child.receive('ready');
    const counts = Object.entries(ready.counts)
      .map(([t, n]) => `${t.split('.').pop()} ${n}`)
      .join(', ');
    console.log(`  store load + first translation:  ${ms(started).toFixed(0)} ms (translation ${ready.translateMs.toFixed(0)} ms: ${counts})`);
    child.send({ kind: 'memory' });
    const idle = await child.receive('memory');
    console.log(`  control plane memory, idle:      RSS ${mib(idle.memory.rss)}, heap ${mib(idle.memory.heapUsed)}`);
    const address = `127.0.0.1:${ready.port}`;

    let t = process.hrtime.bigint();
    const one = new Client(address, 0, sizes);
    await one.until(() => one.synced(), 60_000);
    console.log(
      `  full sync, 1 client:             ${ms(t).toFixed(0)} ms (LDS ${one.counts.get(LISTENER_TYPE_URL)}, CDS ${one.counts.get(CLUSTER_TYPE_URL)}, RDS ${one.counts.get(ROUTE_TYPE_URL)}, EDS ${one.counts.get(ENDPOINT_TYPE_URL)})`,
    );
    one.close();

    t = process.hrtime.bigint();
    for (let i = 0; i < sizes.clients; i++) clients.push(new Client(address, i + 1, sizes));
    await Promise.all(clients.map((c) => c.until(() => c.synced(), 300_000)));
    console.log(`  full sync, ${sizes.clients} clients at once:  ${ms(t).toFixed(0)} ms`);
    await new Promise((r) => setTimeout(r, 500));
    child.send({ kind: 'memory' });
    const loaded = await child.receive('memory');
    console.log(
      `  control plane memory, ${sizes.clients} clients: RSS ${mib(loaded.memory.rss)}, heap ${mib(loaded.memory.heapUsed)} ` +
        `(per client: RSS ${((loaded.memory.rss - idle.memory.rss) / sizes.clients / 1024).toFixed(0)} KiB, heap ${((loaded.memory.heapUsed - idle.memory.heapUsed) / sizes.clients / 1024).toFixed(0)} KiB)`,
    );

    const latencies: number[] = [];
    const applies: number[] = [];
    for (let c = 1; c <= sizes.changes; c++) {
      const before = clients.map((x) => x.versions.get(ROUTE_TYPE_URL));
      t = process.hrtime.bigint();
      child.send({ kind: 'change', generation: c });
      await Promise.all(clients.map((x, i) => x.until(() => x.versions.get(ROUTE_TYPE_URL) !== before[i], 30_000)));
      latencies.push(ms(t));
      applies.push((await child.receive('changed')).applyMs);
    }
    latencies.sort((a, b) => a - b);
    applies.sort((a, b) => a - b);
    child.send({ kind: 'memory' });
    const after = await child.receive('memory');
    console.log(
      `  HTTPRoute change -> last of ${sizes.clients} clients: p50 ${quantile(latencies, 0.5).toFixed(1)} ms, p95 ${quantile(latencies, 0.95).toFixed(1)} ms, max ${latencies[latencies.length - 1]!.toFixed(1)} ms over ${sizes.changes} changes`,
    );
    console.log(`    of which the store write p50 ${quantile(applies, 0.5).toFixed(1)} ms; last full translation ${after.lastTranslateMs.toFixed(1)} ms`);
  } finally {
    for (const c of clients) c.close();
    await child.stop({ kind: 'stop' });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exitCode = 1;
});
