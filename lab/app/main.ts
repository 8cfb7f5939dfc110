// The sample app: `nodemesh lab app http|h2|grpc|echo|client …`, or as a plain script in a pod:
// `node dist/lab/app/main.js http --port 8080`. Servers print one JSON line when listening and stop
// on SIGTERM/SIGINT; the client prints one JSON report and exits 0 only when everything came back intact.
import { parseArgs } from 'node:util';
import { appIdentity } from './identity';
import { CLIENT_MODES, runClient, reportPassed, type ClientMode } from './client';
import { SAMPLE_SERVICE, startGrpcServer } from './grpc';
import { boundAddress, DEFAULT_CALL_TIMEOUT_MS, startEchoServer, startH2Server, startHttpServer } from './servers';
import { parseSize } from './stats';

export const APP_USAGE = `usage: nodemesh lab app <kind> [options]   (or: node dist/lab/app/main.js <kind> …)
  http   [--port 8080] [--host 0.0.0.0] [--name APP] [--pod P] [--node N] [--version V] [--call URL]
         [--call-timeout-ms 5000]
         answers every request with JSON: who it is and what it saw (peer, local address, headers, body sha256);
         --call URL: for every request, GET URL first (own connection) and include the answer (502 if it
         fails or gives no answer within --call-timeout-ms)
  h2     [--port 8080] [--host 0.0.0.0] [--name APP] [--pod P] [--node N] [--version V] [--call URL]
         [--call-timeout-ms 5000]
         the same answers over HTTP/2 without TLS (h2c, prior knowledge)
  grpc   [--port 9090] [--host 0.0.0.0] [--name APP] [--pod P] [--node N] [--version V]
         gRPC service ${SAMPLE_SERVICE} (plaintext): Echo (unary; answers JSON like http) and
         Stream (server streaming: --size bytes in 64 KiB messages, sha256 in the trailers)
  echo   [--port 9000] [--host 0.0.0.0]        TCP echo; half-closes after the peer does
  client --target HOST:PORT [--mode tcp|http|h2|grpc] [--connections 1] [--concurrency 1] [--size 0]
         [--timeout-ms 60000] [--request-timeout-ms 10000] [--path /] [--method GET] [--header k=v]…
         tcp/http: one connection per request; h2/grpc: --connections requests on one connection
         (re-opened when it breaks); grpc: --method Echo (sends --size bytes) or Stream (receives them),
         --header becomes metadata. Prints a JSON report (bytes, sha256 sent vs echoed, status codes
         or gRPC statuses, versions, latency p50/p99, errors); exit 1 on any error`;

class UsageError extends Error {}

function args(argv: string[], options: NonNullable<Parameters<typeof parseArgs>[0]>['options']): Record<string, string | boolean | string[] | undefined> {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | string[] | undefined>;
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${APP_USAGE}`);
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function intArg(v: unknown, fallback: number, flag: string): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new UsageError(`${flag} must be a whole number, got '${String(v)}'`);
  return n;
}

function untilSignal(close: () => void): Promise<number> {
  return new Promise((resolve) => {
    const stop = (): void => {
      close();
      resolve(0);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

const ident = { name: { type: 'string' }, pod: { type: 'string' }, node: { type: 'string' }, version: { type: 'string' } } as const;

const callOptions = { call: { type: 'string' }, 'call-timeout-ms': { type: 'string' } } as const;

/** --call and its time limit (5 s unless given: \`lab up\` gives a longer one on a slow machine). */
function callArgs(v: Record<string, unknown>): { call?: string; callTimeoutMs: number } {
  const call = str(v.call);
  if (call !== undefined && !/^http:\/\/[^/]+/.test(call))
    throw new UsageError(`--call must be an http:// URL (for example http://10.96.0.10:80/), got '${call}'`);
  const callTimeoutMs = intArg(v['call-timeout-ms'], DEFAULT_CALL_TIMEOUT_MS, '--call-timeout-ms');
  if (callTimeoutMs < 1) throw new UsageError(`--call-timeout-ms must be at least 1, got ${callTimeoutMs}`);
  return { call, callTimeoutMs };
}

async function http(argv: string[]): Promise<number> {
  const v = args(argv, { port: { type: 'string' }, host: { type: 'string' }, ...callOptions, ...ident });
  const id = appIdentity({ name: str(v.name), pod: str(v.pod), node: str(v.node), version: str(v.version) });
  const { call, callTimeoutMs } = callArgs(v);
  const server = await startHttpServer(id, intArg(v.port, 8080, '--port'), str(v.host) ?? '0.0.0.0', { call, callTimeoutMs });
  process.stdout.write(JSON.stringify({ listening: boundAddress(server), kind: 'http', ...id }) + '\n');
  return untilSignal(() => server.close());
}

async function h2(argv: string[]): Promise<number> {
  const v = args(argv, { port: { type: 'string' }, host: { type: 'string' }, ...callOptions, ...ident });
  const id = appIdentity({ name: str(v.name), pod: str(v.pod), node: str(v.node), version: str(v.version) });
  const { call, callTimeoutMs } = callArgs(v);
  const server = await startH2Server(id, intArg(v.port, 8080, '--port'), str(v.host) ?? '0.0.0.0', { call, callTimeoutMs });
  process.stdout.write(JSON.stringify({ listening: boundAddress(server), kind: 'h2', ...id }) + '\n');
  return untilSignal(() => server.close());
}

async function grpcApp(argv: string[]): Promise<number> {
  const v = args(argv, { port: { type: 'string' }, host: { type: 'string' }, ...ident });
  const id = appIdentity({ name: str(v.name), pod: str(v.pod), node: str(v.node), version: str(v.version) });
  const host = str(v.host) ?? '0.0.0.0';
  const { server, port } = await startGrpcServer(id, intArg(v.port, 9090, '--port'), host);
  process.stdout.write(JSON.stringify({ listening: { address: host, port }, kind: 'grpc', service: SAMPLE_SERVICE, ...id }) + '\n');
  return untilSignal(() => server.forceShutdown());
}

async function echo(argv: string[]): Promise<number> {
  const v = args(argv, { port: { type: 'string' }, host: { type: 'string' }, ...ident });
  const id = appIdentity({ name: str(v.name), pod: str(v.pod), node: str(v.node), version: str(v.version) });
  const server = await startEchoServer(intArg(v.port, 9000, '--port'), str(v.host) ?? '0.0.0.0');
  process.stdout.write(JSON.stringify({ listening: boundAddress(server), kind: 'echo', ...id }) + '\n');
  return untilSignal(() => server.close());
}

async function client(argv: string[]): Promise<number> {
  const v = args(argv, {
    target: { type: 'string' },
    mode: { type: 'string' },
    connections: { type: 'string' },
    concurrency: { type: 'string' },
    size: { type: 'string' },
    'timeout-ms': { type: 'string' },
    'request-timeout-ms': { type: 'string' },
    path: { type: 'string' },
    method: { type: 'string' },
    header: { type: 'string', multiple: true },
  });
  const target = str(v.target);
  const m = target ? /^(.+):(\d+)$/.exec(target) : null;
  if (!m) throw new UsageError(`--target HOST:PORT is required (for example --target 10.200.2.2:9000)\n${APP_USAGE}`);
  const mode = (str(v.mode) ?? 'tcp') as ClientMode;
  if (!CLIENT_MODES.includes(mode)) throw new UsageError(`--mode must be one of ${CLIENT_MODES.join(', ')}, got '${mode}'`);
  const headers: Record<string, string> = {};
  for (const h of (v.header as string[] | undefined) ?? []) {
    const i = h.indexOf('=');
    if (i < 1) throw new UsageError(`--header must be name=value, got '${h}'`);
    headers[h.slice(0, i)] = h.slice(i + 1);
  }
  let size: number;
  try {
    size = parseSize(str(v.size) ?? '0');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  let report;
  try {
    report = await runClient({
      mode,
      host: m[1] as string,
      port: Number(m[2]),
      connections: intArg(v.connections, 1, '--connections'),
      concurrency: intArg(v.concurrency, 1, '--concurrency'),
      size,
      totalTimeoutMs: intArg(v['timeout-ms'], 60_000, '--timeout-ms'),
      requestTimeoutMs: intArg(v['request-timeout-ms'], 10_000, '--request-timeout-ms'),
      path: str(v.path) ?? '/',
      // gRPC method names are case-sensitive (Echo, Stream); HTTP methods are upper case
      method: mode === 'grpc' ? str(v.method) : str(v.method)?.toUpperCase(),
      headers,
    });
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
  process.stdout.write(JSON.stringify(report) + '\n');
  return reportPassed(report) ? 0 : 1;
}

const kinds: Record<string, (argv: string[]) => Promise<number>> = { http, h2, grpc: grpcApp, echo, client };

/** Runs the sample app; returns the exit code. Usage errors are reported on stderr with exit code 2. */
export async function runApp(argv: string[]): Promise<number> {
  const [kind, ...rest] = argv;
  const fn = kind ? kinds[kind] : undefined;
  if (!fn) {
    process.stderr.write(`${kind ? `unknown app kind '${kind}'\n` : ''}${APP_USAGE}\n`);
    return 2;
  }
  try {
    return await fn(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`nodemesh lab app ${kind}: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

if (require.main === module) {
  runApp(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`sample app: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
