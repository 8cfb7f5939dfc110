// `nodemesh waypoint run --workers N`: N waypoint processes sharing the listeners (node:cluster:
// the primary holds each listening socket — the Listener ports and HBONE's 15008 — and hands
// accepted connections to the workers in turn), so the waypoint uses the node's cores. Each
// worker is a whole waypoint: its own xDS stream and, in mesh mode, its own certificate for the
// same identity. The primary serves what must be one answer for the whole waypoint: /metrics
// (the workers' registries summed, prom-client's AggregatorRegistry) and /healthz/ready (every
// worker has its configuration); worker 0 serves the admin port. A worker that dies is replaced.
import cluster, { type Worker } from 'node:cluster';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { Logger } from '../common/log';

const INDEX_ENV = 'NODEMESH_WAYPOINT_WORKER';
const READY = 'nodemesh:waypoint-ready';

/** This process is worker `index` of a waypoint started with --workers; undefined otherwise. */
export function workerIndex(): number | undefined {
  if (!cluster.isWorker) return undefined;
  const i = Number(process.env[INDEX_ENV]);
  return Number.isInteger(i) ? i : undefined;
}

/** In a worker: answer the primary's metrics requests from `registry`, and report readiness. */
export function serveAsWorker(registry: Registry, isReady: () => boolean): () => void {
  AggregatorRegistry.setRegistries([registry]);
  new AggregatorRegistry(); // installs the worker's answer to the primary's metrics requests
  let last: boolean | undefined;
  const tell = (): void => {
    const now = isReady();
    if (now !== last && process.connected) process.send?.({ type: READY, ready: now });
    last = now;
  };
  tell();
  const timer = setInterval(tell, 250);
  timer.unref();
  return () => clearInterval(timer);
}

export interface PrimaryOptions {
  readonly workers: number;
  readonly metricsPort: number;
  readonly readyPort: number;
  readonly listenAddress: string;
  readonly logger: Logger;
}

export interface Primary {
  readonly ports: { metrics: number; ready: number };
  stop(): Promise<void>;
}

/** In the primary: fork the workers (each runs this same command line) and serve metrics and readiness. */
export async function runPrimary(o: PrimaryOptions): Promise<Primary> {
  const ready = new Map<number, boolean>();
  const indexOf = new Map<Worker, number>();
  let stopping = false;
  const fork = (index: number): void => {
    const w = cluster.fork({ [INDEX_ENV]: String(index) });
    indexOf.set(w, index);
    ready.set(index, false);
    w.on('message', (m: { type?: string; ready?: boolean }) => {
      if (m?.type === READY) ready.set(index, m.ready === true);
    });
    w.on('exit', (code, signal) => {
      indexOf.delete(w);
      ready.set(index, false);
      if (stopping) return;
      o.logger.error({ worker: index, code, signal }, 'a waypoint worker exited; starting another');
      setTimeout(() => !stopping && fork(index), 500).unref();
    });
  };
  for (let i = 0; i < o.workers; i++) fork(i);
  const aggregator = new AggregatorRegistry();
  const servers: Server[] = [];
  const serve = (port: number, page: (path: string) => Promise<{ status: number; type: string; body: string }>): Promise<number> => {
    const srv = createServer((req, res) => {
      page((req.url ?? '/').split('?')[0]!).then(
        (p) => {
          res.writeHead(p.status, { 'content-type': p.type });
          res.end(p.body);
        },
        (err: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`${err instanceof Error ? err.message : String(err)}\n`);
        },
      );
    });
    servers.push(srv);
    return new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, o.listenAddress, () => resolve((srv.address() as AddressInfo).port));
    });
  };
  const allReady = (): boolean => ready.size === o.workers && [...ready.values()].every(Boolean);
  const metrics = await serve(o.metricsPort, async (path) =>
    path === '/metrics' || path === '/stats/prometheus'
      ? { status: 200, type: aggregator.contentType, body: await aggregator.clusterMetrics() }
      : { status: 404, type: 'text/plain', body: 'not found' },
  );
  const readyPort = await serve(o.readyPort, async (path) =>
    path === '/healthz/ready'
      ? allReady()
        ? { status: 200, type: 'text/plain', body: 'ready\n' }
        : { status: 503, type: 'text/plain', body: `waiting for xDS (${[...ready.values()].filter(Boolean).length}/${o.workers} workers ready)\n` }
      : { status: 404, type: 'text/plain', body: 'not found' },
  );
  return {
    ports: { metrics, ready: readyPort },
    async stop() {
      stopping = true;
      for (const s of servers) s.close();
      const exits = [...indexOf.keys()].map((w) => new Promise<void>((r) => (w.isDead() ? r() : w.once('exit', () => r()))));
      for (const w of indexOf.keys()) w.process.kill('SIGTERM');
      const timer = setTimeout(() => {
        for (const w of indexOf.keys()) w.process.kill('SIGKILL');
      }, 10_000);
      await Promise.all(exits);
      clearTimeout(timer);
    },
  };
}

/** The --workers value: a whole number from 1 to 64. */
export function parseWorkers(s: string | undefined): number | string {
  if (s === undefined) return 1;
  const n = Number(s);
  return Number.isInteger(n) && n >= 1 && n <= 64 ? n : `--workers ${s} is not a whole number from 1 to 64`;
}
