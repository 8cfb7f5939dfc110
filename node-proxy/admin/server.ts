// The node proxy's admin endpoint (15000, loopback of its own netns): JSON views of what the proxy
// believes — enrolled workloads and open captured connections — and readiness on 15021. Both are
// read-only; nothing here changes capture.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ADMIN_PORT, READY_PORT } from '../../common/contracts/ports';

export interface AdminView {
  workloads(): unknown[];
  connections(workload?: string): unknown[];
  stats(): unknown;
  /** Undefined when ready, else why not (sent with 503). */
  notReadyReason(): string | undefined;
  /** More read-only views: path (e.g. "/certificates") -> JSON. */
  extra?: Readonly<Record<string, () => unknown>>;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function adminHandler(view: AdminView) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://admin');
    if (req.method !== 'GET') return sendJson(res, 405, { error: `${req.method} is not allowed; the admin API is read-only (GET)` });
    switch (url.pathname) {
      case '/':
        return sendJson(res, 200, {
          endpoints: ['/workloads', '/connections', '/connections?workload=<namespace>/<name>', '/stats', ...Object.keys(view.extra ?? {}), '/healthz/ready'],
        });
      case '/workloads':
        return sendJson(res, 200, view.workloads());
      case '/connections':
        return sendJson(res, 200, view.connections(url.searchParams.get('workload') ?? undefined));
      case '/stats':
        return sendJson(res, 200, view.stats());
      case '/healthz/ready':
        return readyHandler(view)(req, res);
      default: {
        const extra = view.extra?.[url.pathname];
        if (extra) return sendJson(res, 200, extra());
        return sendJson(res, 404, { error: `no admin endpoint ${url.pathname}; GET / lists them` });
      }
    }
  };
}

export function readyHandler(view: AdminView) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://ready');
    if (url.pathname !== '/healthz/ready') return sendJson(res, 404, { error: 'only /healthz/ready is served here' });
    const reason = view.notReadyReason();
    if (reason === undefined) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ready\n');
    } else {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end(`not ready: ${reason}\n`);
    }
  };
}

function listen(server: Server, port: number, host: string, what: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void =>
      reject(
        new Error(
          `cannot open the ${what} on ${host}:${port}: ${err.code ?? err.message}` +
            (err.code === 'EADDRINUSE' ? ' (another node proxy runs in this network namespace? stop it or pick another port)' : ''),
        ),
      );
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server);
    });
  });
}

export interface AdminServers {
  admin: Server;
  ready: Server;
  adminPort: number;
  readyPort: number;
  close(): Promise<void>;
}

export async function startAdmin(view: AdminView, opts: { adminPort?: number; readyPort?: number; readyHost?: string } = {}): Promise<AdminServers> {
  const admin = await listen(createServer(adminHandler(view)), opts.adminPort ?? ADMIN_PORT, '127.0.0.1', 'admin endpoint');
  // Readiness is probed by the kubelet (or the lab) from outside the proxy's netns: all addresses.
  const ready = await listen(createServer(readyHandler(view)), opts.readyPort ?? READY_PORT, opts.readyHost ?? '0.0.0.0', 'readiness endpoint').catch(
    (err: unknown) => {
      admin.close();
      throw err;
    },
  );
  const closeOne = (s: Server): Promise<void> =>
    new Promise((r) => {
      s.closeAllConnections();
      s.close(() => r());
    });
  return {
    admin,
    ready,
    adminPort: (admin.address() as AddressInfo).port,
    readyPort: (ready.address() as AddressInfo).port,
    close: async () => {
      await Promise.all([closeOne(admin), closeOne(ready)]);
    },
  };
}
