// `nodemesh dashboard`: opens the /ui page of the control plane in a browser. It asks the control
// plane (with the API token, like every config command) for a one-time login code, serves a small
// forwarder on 127.0.0.1 that passes /ui/* through to the control plane — the lab's control plane
// sits inside the lab's network namespace and speaks HTTPS with the mesh CA, which a browser on
// this host can neither reach nor verify — and prints (and opens, when a browser is there) the
// login URL. The forwarder adds no token: the browser authenticates with the session cookie the
// login sets. It runs until interrupted.
import { spawn, spawnSync } from 'node:child_process';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CliError, type Command } from '../../cli/command';
import type { ApiClient } from '../api/client';
import { clientFrom, CONNECTION_HELP, connectionOptions, parse, processContext, type CliContext } from '../cmd/context';

const HELP = `usage: nodemesh dashboard [--port N] [--address ADDR] [--no-browser] [connection options]

Opens the mesh's live page (/ui on the control plane's config API): a local forwarder on
ADDR:N (default 127.0.0.1, a free port) and a one-time login link (valid 60 s, single use; it sets
a session cookie, the API token never appears in a URL). Opens the link in a browser when one is
there (xdg-open with a display), else prints it. Runs until interrupted (Ctrl-C).

  --port N         the forwarder's port (default: a free one)
  --address ADDR   the forwarder's address (default 127.0.0.1; anything else lets other machines in)
  --no-browser     print the link only

${CONNECTION_HELP}`;

const FORWARD_HEADERS = ['accept', 'cookie', 'last-event-id', 'cache-control', 'if-none-match', 'user-agent'];

/** Passes one /ui request through to the control plane (other paths: 404). */
export function forwardHandler(client: ApiClient) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const path = req.url ?? '/';
    if (!(path === '/ui' || path.startsWith('/ui/') || path.startsWith('/ui?'))) {
      res.writeHead(path === '/' ? 302 : 404, path === '/' ? { location: '/ui/' } : { 'content-type': 'text/plain' });
      res.end(path === '/' ? undefined : 'only /ui is forwarded here\n');
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405, { 'content-type': 'text/plain' }).end('the page is read-only (GET)\n');
      return;
    }
    const headers: Record<string, string> = { 'x-nodemesh-dashboard': '1' };
    for (const h of FORWARD_HEADERS) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    const up = client.passThrough('GET', path, headers, (ur) => {
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(ur.headers)) if (v !== undefined && k !== 'connection' && k !== 'transfer-encoding') out[k] = v;
      res.writeHead(ur.statusCode ?? 502, out);
      if (typeof res.flushHeaders === 'function') res.flushHeaders();
      ur.pipe(res);
      res.on('close', () => ur.destroy());
    });
    up.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`cannot reach the control plane: ${err.message}\n`);
    });
    req.on('close', () => up.destroy());
    up.end();
  };
}

function browserCommand(env: NodeJS.ProcessEnv): string | undefined {
  if (!env.DISPLAY && !env.WAYLAND_DISPLAY) return undefined;
  const r = spawnSync('sh', ['-c', 'command -v xdg-open'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

export async function runDashboard(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { values } = parse('dashboard', argv, {
    ...connectionOptions,
    port: { type: 'string' },
    address: { type: 'string' },
    'no-browser': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return (ctx.stdout.write(`${HELP}\n`), 0);
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CliError(`dashboard: --port must be 0..65535, not "${values.port}"`, 2);
  const client = clientFrom(values, ctx);
  let code: string;
  try {
    code = (await client.getJson<{ code: string }>('/ui/login-code', 'POST')).code;
  } catch (err) {
    throw new CliError(
      `dashboard: cannot get a login code from the control plane: ${(err as Error).message} (a control plane older than the /ui page answers 404)`,
      1,
    );
  }
  const server = http.createServer(forwardHandler(client));
  const host = values.address ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new CliError(`dashboard: cannot listen on ${host}:${port}: ${err.code ?? err.message}`, 1)));
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}/ui/login?code=${code}`;
  ctx.stdout.write(`dashboard: ${url}\n(the link works once, within 60 s; run 'nodemesh dashboard' again for a new one; Ctrl-C stops the forwarder)\n`);
  const opener = values['no-browser'] ? undefined : browserCommand(ctx.env);
  if (opener) spawn(opener, [url], { stdio: 'ignore', detached: true }).unref();
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      server.closeAllConnections();
      server.close(() => resolve());
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}

export const dashboardCommand: Command = {
  name: 'dashboard',
  summary: "open the mesh's live page (/ui): graph, policies, explain, proxies",
  run: (argv) => runDashboard(argv),
};
