// The sample client / load generator: N connections (C at a time) carrying `size` bytes to a TCP echo
// server or an HTTP server, each checked end to end with sha256. Bounded in count and in time.
import { createHash, randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { summarize, type LatencySummary } from './stats';
import type { HttpReply } from './servers';

export const LIMITS = { connections: 100_000, concurrency: 1000, size: 1024 ** 3, totalTimeoutMs: 600_000 };
const CHUNK = 64 * 1024;

export interface ClientOptions {
  mode: 'tcp' | 'http';
  host: string;
  port: number;
  connections: number;
  concurrency: number;
  size: number;
  /** Stop starting new connections and abort open ones after this long. */
  totalTimeoutMs: number;
  /** Abort one connection that takes longer than this. */
  requestTimeoutMs: number;
  path: string;
  /** HTTP method (default GET, or POST with a body). */
  method?: string;
  headers?: Record<string, string>;
}

export interface ClientReport {
  mode: 'tcp' | 'http';
  target: string;
  connections: number;
  concurrency: number;
  size: number;
  completed: number;
  ok: number;
  errors: number;
  errorSamples: string[];
  checksumMismatches: number;
  bytesSent: number;
  bytesReceived: number;
  sha256Sent: string;
  /** The sha256 of what came back (TCP echo) or what the server hashed (HTTP); "mixed" when they differed. */
  sha256Echoed: string;
  latencyMs: LatencySummary;
  durationMs: number;
  timedOut: boolean;
  statusCodes: Record<string, number>;
  /** HTTP: the first reply body (who answered and what it saw). */
  sample?: HttpReply;
  /** HTTP: replies per app version (the sample server's `version`), e.g. { v1: 91, v2: 9 }. */
  versions?: Record<string, number>;
  /** HTTP: the first body of a non-2xx answer that was not the sample server's (e.g. a proxy's "RBAC: access denied"). */
  errorBody?: string;
}

export function checkClientOptions(o: ClientOptions): ClientOptions {
  const bound = (v: number, min: number, max: number, flag: string): void => {
    if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`${flag} must be a whole number from ${min} to ${max}, got ${v}`);
  };
  bound(o.connections, 1, LIMITS.connections, '--connections');
  bound(o.concurrency, 1, LIMITS.concurrency, '--concurrency');
  bound(o.size, 0, LIMITS.size, '--size');
  bound(o.totalTimeoutMs, 1, LIMITS.totalTimeoutMs, '--timeout-ms');
  bound(o.port, 1, 65535, 'port');
  return o;
}

interface Outcome {
  sent: number;
  received: number;
  echoedSha?: string;
  status?: number;
  reply?: HttpReply;
  text?: string;
}

/** Writes `payload` in chunks, honouring backpressure, then half-closes. */
function writeAll(w: NodeJS.WritableStream, payload: Buffer, onSent: (n: number) => void): void {
  let off = 0;
  const pump = (): void => {
    while (off < payload.length) {
      const end = Math.min(off + CHUNK, payload.length);
      const more = w.write(payload.subarray(off, end));
      onSent(end - off);
      off = end;
      if (!more) {
        w.once('drain', pump);
        return;
      }
    }
    w.end();
  };
  pump();
}

function tcpOnce(o: ClientOptions, payload: Buffer, signal: AbortSignal): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    const out: Outcome = { sent: 0, received: 0 };
    const socket = connect({ host: o.host, port: o.port, allowHalfOpen: true });
    const timer = setTimeout(() => socket.destroy(new Error(`no complete echo within ${o.requestTimeoutMs} ms`)), o.requestTimeoutMs);
    const onAbort = (): void => void socket.destroy(new Error('aborted: the run hit --timeout-ms'));
    signal.addEventListener('abort', onAbort, { once: true });
    socket.on('connect', () => writeAll(socket, payload, (n) => (out.sent += n)));
    socket.on('data', (chunk: Buffer) => {
      out.received += chunk.length;
      hash.update(chunk);
    });
    socket.on('end', () => socket.end());
    socket.on('error', (e) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      reject(e);
    });
    socket.on('close', (hadError) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (!hadError) resolve({ ...out, echoedSha: hash.digest('hex') });
    });
  });
}

function httpOnce(o: ClientOptions, payload: Buffer, signal: AbortSignal): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const out: Outcome = { sent: 0, received: 0 };
    const req = httpRequest(
      {
        host: o.host,
        port: o.port,
        path: o.path,
        method: o.method ?? (payload.length ? 'POST' : 'GET'),
        agent: false, // one connection per request: N requests are N connections
        headers: { ...o.headers, ...(payload.length ? { 'content-length': payload.length, 'content-type': 'application/octet-stream' } : {}) },
        timeout: o.requestTimeoutMs,
        signal,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => {
          out.received += c.length;
          chunks.push(c);
        });
        res.on('end', () => {
          out.status = res.statusCode;
          const body = Buffer.concat(chunks).toString('utf8');
          try {
            out.reply = JSON.parse(body) as HttpReply;
            out.echoedSha = out.reply.request?.bodySha256;
          } catch {
            out.text = body.slice(0, 200); // not our sample server: no checksum to compare
          }
          resolve(out);
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no response within ${o.requestTimeoutMs} ms`)));
    req.on('error', reject);
    if (payload.length) writeAll(req, payload, (n) => (out.sent += n));
    else req.end();
  });
}

export async function runClient(opts: ClientOptions): Promise<ClientReport> {
  const o = checkClientOptions(opts);
  const payload = randomBytes(o.size);
  const sha256Sent = createHash('sha256').update(payload).digest('hex');
  const abort = new AbortController();
  // every open connection listens for the run's deadline (HTTP: twice, request + our socket)
  setMaxListeners(2 * o.concurrency + 10, abort.signal);
  const t0 = performance.now();
  const deadline = setTimeout(() => abort.abort(), o.totalTimeoutMs);
  const report: ClientReport = {
    mode: o.mode,
    target: `${o.host}:${o.port}`,
    connections: o.connections,
    concurrency: o.concurrency,
    size: o.size,
    completed: 0,
    ok: 0,
    errors: 0,
    errorSamples: [],
    checksumMismatches: 0,
    bytesSent: 0,
    bytesReceived: 0,
    sha256Sent,
    sha256Echoed: '',
    latencyMs: summarize([]),
    durationMs: 0,
    timedOut: false,
    statusCodes: {},
  };
  const latencies: number[] = [];
  const echoed = new Set<string>();
  let started = 0;
  const one = o.mode === 'tcp' ? tcpOnce : httpOnce;
  const worker = async (): Promise<void> => {
    while (started < o.connections && !abort.signal.aborted) {
      started++;
      const t = performance.now();
      try {
        const r = await one(o, payload, abort.signal);
        report.bytesSent += r.sent;
        report.bytesReceived += r.received;
        if (r.status !== undefined) report.statusCodes[r.status] = (report.statusCodes[r.status] ?? 0) + 1;
        if (r.reply && !report.sample) report.sample = r.reply;
        if (r.reply?.version !== undefined) {
          const v = (report.versions ??= {});
          v[r.reply.version] = (v[r.reply.version] ?? 0) + 1;
        }
        if (r.text !== undefined && report.errorBody === undefined && r.status !== undefined && (r.status < 200 || r.status >= 300)) report.errorBody = r.text;
        if (r.echoedSha !== undefined) echoed.add(r.echoedSha);
        const shaOk = r.echoedSha === sha256Sent || (o.mode === 'http' && r.echoedSha === undefined);
        const statusOk = r.status === undefined || (r.status >= 200 && r.status < 300);
        if (!shaOk) report.checksumMismatches++;
        if (shaOk && statusOk) {
          report.ok++;
          latencies.push(performance.now() - t);
        } else if (!statusOk) {
          report.errors++;
          if (report.errorSamples.length < 5) report.errorSamples.push(`HTTP ${r.status}`);
        }
      } catch (e) {
        report.errors++;
        const msg = (e as Error).message;
        if (report.errorSamples.length < 5 && !report.errorSamples.includes(msg)) report.errorSamples.push(msg);
      }
      report.completed++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency, o.connections) }, worker));
  clearTimeout(deadline);
  report.timedOut = abort.signal.aborted;
  report.durationMs = Math.round(performance.now() - t0);
  report.latencyMs = summarize(latencies);
  report.sha256Echoed = echoed.size === 1 ? [...echoed][0]! : echoed.size === 0 ? '' : 'mixed'; // size checked: non-null
  return report;
}

/** True when every connection ran and came back intact. */
export function reportPassed(r: ClientReport): boolean {
  return r.completed === r.connections && r.ok === r.connections && r.errors === 0 && r.checksumMismatches === 0 && !r.timedOut;
}
