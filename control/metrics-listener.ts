// The control plane's metrics-only listener (`nodemesh control --metrics-port N`; the chart: 15020,
// the port every nodemesh component serves Prometheus on). Plain HTTP, GET/HEAD `/metrics` and
// nothing else: the config API (15014) is HTTPS with a mesh-CA certificate off loopback, which a
// Prometheus configured by `prometheus.io/*` pod annotations cannot verify (annotations carry no CA),
// so, as istiod serves its monitoring port apart from its APIs, the counters get a listener of their
// own that holds no token, no config and no write path (docs/kubernetes.md, docs/security.md).
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Registry } from 'prom-client';
import { listenerTimeouts } from './metrics';

export interface MetricsListener {
  readonly server: Server;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Limits of the metrics listener: a scraper sends one small GET. A connection that has not sent
 * its headers in time (also one that sends nothing) gets 408 and is counted as kind=request; a
 * kept-alive connection idle for keepAliveTimeoutMs is closed and counted as kind=idle
 * (nodemesh_listener_timeouts_total{listener="metrics"}). Timeouts are checked every
 * checkIntervalMs, so a slow peer is closed within the timeout plus that.
 */
export const METRICS_LISTENER_LIMITS = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxHeaderBytes: 16 * 1024,
  maxConnections: 64,
  checkIntervalMs: 2_000,
};

export type MetricsListenerLimits = typeof METRICS_LISTENER_LIMITS;

export function startMetricsListener(
  registry: Registry,
  opts: { host?: string; port: number; limits?: Partial<MetricsListenerLimits> },
): Promise<MetricsListener> {
  const host = opts.host ?? '0.0.0.0';
  const l = { ...METRICS_LISTENER_LIMITS, ...opts.limits };
  const timeouts = listenerTimeouts(registry);
  const server = createServer(
    {
      headersTimeout: l.headersTimeoutMs,
      requestTimeout: l.requestTimeoutMs,
      keepAliveTimeout: l.keepAliveTimeoutMs,
      maxHeaderSize: l.maxHeaderBytes,
      connectionsCheckingInterval: l.checkIntervalMs,
    },
    (req, res) => {
      const path = new URL(req.url ?? '/', 'http://metrics').pathname;
      if (path !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`only /metrics is served here; the config API is on its own port (--listen)\n`);
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end('metrics are read with GET\n');
        return;
      }
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
        (err: unknown) =>
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`cannot collect metrics: ${err instanceof Error ? err.message : String(err)}\n`),
      );
    },
  );
  server.maxConnections = l.maxConnections;
  // With server.timeout 0 (Node's default), a socket timeout is the keep-alive timeout: an idle
  // connection between requests. Node closes it itself unless someone listens; we count and close.
  server.on('timeout', (socket: Socket) => {
    timeouts.inc({ listener: 'metrics', kind: 'idle' });
    socket.destroy();
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') timeouts.inc({ listener: 'metrics', kind: 'request' });
    const status =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? '408 Request Timeout'
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? '431 Request Header Fields Too Large'
          : '400 Bad Request';
    if (socket.writable && !socket.destroyed) socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    else socket.destroy();
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(`cannot open the metrics listener on ${host}:${opts.port}: ${err.code ?? err.message}; choose another --metrics-port`)),
    );
    server.listen(opts.port, host, () =>
      resolve({
        server,
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      }),
    );
  });
}
