// `nodemesh waypoint run --workers N`: N waypoint processes sharing the listeners (node:cluster:
// the primary holds each listening socket — the Listener ports and HBONE's 15008 — and hands
// accepted connections to the workers in turn, round-robin), so the waypoint uses the node's
// cores. The primary holds what must be one for the whole waypoint: the xDS stream to the control
// plane (re-served to the workers over a private Unix socket, relay.ts), the certificate (fetched
// and renewed once, handed to the workers over the IPC channel), /metrics (the workers' registries
// summed, prom-client's AggregatorRegistry) and /healthz/ready (the primary has its configuration
// and every worker has it too); worker 0 serves the admin port. A worker that dies is replaced.
import cluster, { type Worker } from 'node:cluster';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { Logger } from '../common/log';
import { trustBundle } from '../common/identity/verify';
import type { MeshCredentials, MeshCredentialsValue } from './proxy/upstream';

const INDEX_ENV = 'NODEMESH_WAYPOINT_WORKER';
const RELAY_ENV = 'NODEMESH_WAYPOINT_RELAY';
const MESH_ENV = 'NODEMESH_WAYPOINT_RELAY_CERT';
const READY = 'nodemesh:waypoint-ready';
const CERT = 'nodemesh:waypoint-cert';
const CERT_WANTED = 'nodemesh:waypoint-cert-wanted';

/** A certificate as it crosses the IPC channel (PEM strings). */
interface CertMessage {
  readonly type: typeof CERT;
  readonly certChain: string;
  readonly key: string;
  readonly trustDomain: string;
  readonly trustPem: string;
  readonly spiffeId: string;
  readonly notAfter?: string;
}

function certMessage(c: MeshCredentialsValue): CertMessage {
  return {
    type: CERT,
    certChain: c.certChain,
    key: c.key,
    trustDomain: c.trustBundle.trustDomain,
    trustPem: c.trustBundle.pem,
    spiffeId: c.spiffeId,
    notAfter: c.notAfter?.toISOString(),
  };
}

/** In a worker: where its xDS comes from (the primary's relay) and whether its certificate comes from the primary. */
export function workerRelay(): { readonly control: string; readonly certificate: boolean } | undefined {
  const control = process.env[RELAY_ENV];
  if (!cluster.isWorker || !control) return undefined;
  return { control, certificate: process.env[MESH_ENV] === '1' };
}

/**
 * In a worker: the certificate the primary holds, as MeshCredentials (renewals arrive as new
 * messages). Resolves with the first one; rejects after `timeoutMs` without one.
 */
export function credentialsFromPrimary(timeoutMs: number): Promise<MeshCredentials> {
  let value: MeshCredentialsValue | undefined;
  const listeners = new Set<(c: MeshCredentialsValue) => void>();
  const creds: MeshCredentials = {
    current: () => (value && (!value.notAfter || value.notAfter.getTime() > Date.now()) ? value : undefined),
    onChange: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no certificate from the waypoint's primary process within ${timeoutMs} ms`)), timeoutMs);
    process.on('message', (m: CertMessage) => {
      if (m?.type !== CERT) return;
      const first = value === undefined;
      value = {
        certChain: m.certChain,
        key: m.key,
        trustBundle: trustBundle(m.trustDomain, m.trustPem),
        spiffeId: m.spiffeId,
        notAfter: m.notAfter ? new Date(m.notAfter) : undefined,
      };
      if (first) {
        clearTimeout(timer);
        resolve(creds);
      } else for (const l of listeners) l(value);
    });
    // Asked for once listening (a message sent before a listener exists would be lost).
    process.send?.({ type: CERT_WANTED });
  });
}

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
  /** The xDS relay the workers connect to (relay.ts): its address and whether it has its configuration. */
  readonly relay: { readonly address: string; readonly synced: boolean; whenSynced(): Promise<void> };
  /** The certificate (mesh mode), handed to each worker and again on every renewal. */
  readonly credentials?: MeshCredentials;
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
  const creds = o.credentials;
  const fork = (index: number): void => {
    const w = cluster.fork({ [INDEX_ENV]: String(index), [RELAY_ENV]: o.relay.address, [MESH_ENV]: creds ? '1' : '0' });
    indexOf.set(w, index);
    ready.set(index, false);
    w.on('message', (m: { type?: string; ready?: boolean }) => {
      if (m?.type === READY) ready.set(index, m.ready === true);
      else if (m?.type === CERT_WANTED) {
        const c = creds?.current();
        if (c) w.send(certMessage(c));
      }
    });
    w.on('exit', (code, signal) => {
      indexOf.delete(w);
      ready.set(index, false);
      if (stopping) return;
      o.logger.error({ worker: index, code, signal }, 'a waypoint worker exited; starting another');
      setTimeout(() => !stopping && fork(index), 500).unref();
    });
  };
  const stopRenewals = creds?.onChange?.((c) => {
    const m = certMessage(c);
    for (const w of indexOf.keys()) if (w.isConnected()) w.send(m);
  });
  // Workers start once the relay has the whole configuration: a worker's first xDS state is then
  // complete, and its readiness means it can serve.
  void o.relay.whenSynced().then(() => {
    if (!stopping) for (let i = 0; i < o.workers; i++) fork(i);
  });
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
  const allReady = (): boolean => o.relay.synced && ready.size === o.workers && [...ready.values()].every(Boolean);
  const metrics = await serve(o.metricsPort, async (path) =>
    path === '/metrics' || path === '/stats/prometheus'
      ? { status: 200, type: aggregator.contentType, body: await aggregator.clusterMetrics() }
      : { status: 404, type: 'text/plain', body: 'not found' },
  );
  const readyPort = await serve(o.readyPort, async (path) =>
    path === '/healthz/ready'
      ? allReady()
        ? { status: 200, type: 'text/plain', body: 'ready\n' }
        : {
            status: 503,
            type: 'text/plain',
            body: o.relay.synced
              ? `waiting for xDS (${[...ready.values()].filter(Boolean).length}/${o.workers} workers ready)\n`
              : 'waiting for xDS (the primary has no complete configuration from the control plane yet)\n',
          }
      : { status: 404, type: 'text/plain', body: 'not found' },
  );
  return {
    ports: { metrics, ready: readyPort },
    async stop() {
      stopping = true;
      stopRenewals?.();
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
