// The node proxy's Prometheus endpoint on 15020: /metrics (and /stats/prometheus, the path Istio's
// scrape annotations use), and /recent: the ring of recent connections (common/recent-records.ts). GET only; everything else is 404/405 with a hint.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { METRICS_PORT } from '../../common/contracts/ports';
import { RECENT_RECORDS_PATH, type RecentRecords } from '../../common/recent-records';

const PATHS = new Set(['/metrics', '/stats/prometheus']);

export function metricsHandler(registry: Registry, recent?: RecentRecords) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://metrics');
    const path = url.pathname;
    if (recent && path === RECENT_RECORDS_PATH && req.method === 'GET') {
      const r = recent.respond(url.searchParams);
      res.writeHead(r.status, { 'content-type': 'application/json' });
      res.end(r.body);
      return;
    }
    if (!PATHS.has(path)) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`no ${path} here; metrics are at /metrics\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' });
      res.end('metrics are read with GET\n');
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`cannot collect metrics: ${err instanceof Error ? err.message : String(err)}\n`);
      },
    );
  };
}

export interface MetricsServer {
  readonly server: Server;
  readonly port: number;
  close(): Promise<void>;
}

/** Listen on host:port (default 0.0.0.0:15020; port 0 picks a free one). */
export function startMetricsServer(registry: Registry, opts: { host?: string; port?: number; recent?: RecentRecords } = {}): Promise<MetricsServer> {
  const host = opts.host ?? '0.0.0.0';
  const port = opts.port ?? METRICS_PORT;
  const server = createServer(metricsHandler(registry, opts.recent));
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `cannot open the metrics endpoint on ${host}:${port}: ${err.code ?? err.message}` +
            (err.code === 'EADDRINUSE' ? ' (another node proxy or Istio agent runs here? stop it or choose another port)' : ''),
        ),
      ),
    );
    server.listen(port, host, () => {
      resolve({
        server,
        port: (server.address() as AddressInfo).port,
        close: () => new Promise<void>((r) => server.close(() => r())),
      });
    });
  });
}
