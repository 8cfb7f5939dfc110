// The sample client / load generator: N connections (C at a time) carrying `size` bytes to a TCP echo
// server or an HTTP server, or N requests on HTTP/2 (h2c) or gRPC (one multiplexed connection,
// re-opened when it breaks), each checked end to end with sha256. Bounded in count and in time.
import { createHash, randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { request as httpRequest } from 'node:http';
import { connect as h2connect, constants as h2, type ClientHttp2Session } from 'node:http2';
import { connect } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { ECHO_PATH, STREAM_CHUNK, STREAM_PATH, grpcStatusName } from './grpc';
import { LIMITS } from './limits';
import { summarize, type LatencySummary } from './stats';

export { LIMITS };
import type { HttpReply } from './servers';

export type ClientMode = 'tcp' | 'http' | 'h2' | 'grpc';
export const CLIENT_MODES: readonly ClientMode[] = ['tcp', 'http', 'h2', 'grpc'];

const CHUNK = 64 * 1024;

export interface ClientOptions {
  mode: ClientMode;
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
  /** HTTP method (default GET, or POST with a body); gRPC: Echo (default; `size` bytes sent) or
   * Stream (`size` bytes streamed back). */
  method?: string;
  headers?: Record<string, string>;
}

export interface ClientReport {
  mode: ClientMode;
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
  /** HTTP status codes, or gRPC status names ("OK", "PERMISSION_DENIED", …), with their counts. */
  statusCodes: Record<string, number>;
  /** HTTP: the first reply body (who answered and what it saw). */
  sample?: HttpReply;
  /** Replies per app version (the sample server's `version`), e.g. { v1: 91, v2: 9 }. */
  versions?: Record<string, number>;
  /** The first body of a non-2xx answer that was not the sample server's (e.g. a proxy's "RBAC:
   * access denied"), or the first non-OK gRPC status message. */
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
  if (!CLIENT_MODES.includes(o.mode)) throw new RangeError(`--mode must be one of ${CLIENT_MODES.join(', ')}, got '${String(o.mode)}'`);
  if (o.mode === 'grpc' && o.method !== undefined && o.method !== 'Echo' && o.method !== 'Stream')
    throw new RangeError(`--method for gRPC must be Echo or Stream, got '${o.method}'`);
  return o;
}

interface Outcome {
  sent: number;
  received: number;
  echoedSha?: string;
  /** Set when the check is not "echoedSha equals what was sent" (gRPC Stream: the server's trailer). */
  intact?: boolean;
  status?: number;
  grpcStatus?: number;
  reply?: HttpReply;
  version?: string;
  text?: string;
}

type Once = (o: ClientOptions, payload: Buffer, signal: AbortSignal) => Promise<Outcome>;

/** How one run sends its requests; `close` releases what it holds (sessions, channels). */
interface Transport {
  once: Once;
  close(): void;
}

function parseReply(out: Outcome, body: string): void {
  try {
    out.reply = JSON.parse(body) as HttpReply;
    out.echoedSha = out.reply.request?.bodySha256;
    out.version = out.reply.version;
  } catch {
    out.text = body.slice(0, 200); // not our sample server: no checksum to compare
  }
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
          parseReply(out, Buffer.concat(chunks).toString('utf8'));
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

/** HTTP/2 without TLS (prior knowledge): every request a stream on one session, re-opened when it breaks. */
function h2Transport(o: ClientOptions): Transport {
  let session: ClientHttp2Session | undefined;
  const open = (): ClientHttp2Session => {
    if (session && !session.closed && !session.destroyed) return session;
    const s = h2connect(`http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}`, { settings: { enablePush: false } });
    s.on('error', () => undefined); // each stream reports its own failure
    s.on('goaway', () => s.close());
    session = s;
    return s;
  };
  const once: Once = (o, payload, signal) =>
    new Promise((resolve, reject) => {
      const out: Outcome = { sent: 0, received: 0 };
      const stream = open().request(
        {
          ...o.headers,
          [h2.HTTP2_HEADER_METHOD]: o.method ?? (payload.length ? 'POST' : 'GET'),
          [h2.HTTP2_HEADER_PATH]: o.path,
          ...(payload.length ? { 'content-length': payload.length, 'content-type': 'application/octet-stream' } : {}),
        },
        { endStream: payload.length === 0, signal },
      );
      stream.setTimeout(o.requestTimeoutMs, () => stream.destroy(new Error(`no response within ${o.requestTimeoutMs} ms`)));
      const chunks: Buffer[] = [];
      stream.on('response', (h) => (out.status = Number(h[h2.HTTP2_HEADER_STATUS])));
      stream.on('data', (c: Buffer) => {
        out.received += c.length;
        chunks.push(c);
      });
      stream.on('end', () => {
        if (out.status === undefined) return reject(new Error('the stream ended without a response'));
        parseReply(out, Buffer.concat(chunks).toString('utf8'));
        resolve(out);
      });
      stream.on('error', reject);
      stream.on('close', () => {
        if (stream.rstCode && stream.rstCode !== h2.NGHTTP2_NO_ERROR) reject(new Error(`stream reset (HTTP/2 error ${stream.rstCode})`));
      });
      if (payload.length) writeAll(stream, payload, (n) => (out.sent += n));
    });
  return { once, close: () => session?.destroy() };
}

function grpcMetadata(headers: Record<string, string> | undefined): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers ?? {})) md.set(k, v);
  return md;
}

const rawBytes = { serialize: (b: Buffer): Buffer => b, deserialize: (b: Buffer): Buffer => b };

/** gRPC (grpc-js, plaintext) to the sample service: one channel for the run, which reconnects on its own. */
function grpcTransport(o: ClientOptions): Transport {
  const client = new grpc.Client(`${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}`, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': -1,
  });
  const deadline = (): Date => new Date(Date.now() + o.requestTimeoutMs);
  const failed = (out: Outcome, err: grpc.ServiceError): Outcome => {
    out.grpcStatus = err.code;
    out.text = `${grpcStatusName(err.code)}: ${err.details}`.slice(0, 200);
    return out;
  };
  const echo: Once = (o, payload, signal) =>
    new Promise((resolve) => {
      const out: Outcome = { sent: payload.length, received: 0 };
      const call = client.makeUnaryRequest(
        ECHO_PATH,
        rawBytes.serialize,
        rawBytes.deserialize,
        payload,
        grpcMetadata(o.headers),
        { deadline: deadline() },
        (err, res) => {
          signal.removeEventListener('abort', cancel);
          if (err) return resolve(failed(out, err));
          out.grpcStatus = grpc.status.OK;
          out.received = res!.length; // no error: the reply is there
          parseReply(out, res!.toString('utf8'));
          resolve(out);
        },
      );
      const cancel = (): void => call.cancel();
      signal.addEventListener('abort', cancel, { once: true });
    });
  const stream: Once = (o, _payload, signal) =>
    new Promise((resolve) => {
      const out: Outcome = { sent: 0, received: 0 };
      const hash = createHash('sha256');
      const call = client.makeServerStreamRequest(
        STREAM_PATH,
        rawBytes.serialize,
        rawBytes.deserialize,
        Buffer.from(JSON.stringify({ bytes: o.size, chunk: STREAM_CHUNK })),
        grpcMetadata(o.headers),
        {
          deadline: deadline(),
        },
      );
      const cancel = (): void => call.cancel();
      signal.addEventListener('abort', cancel, { once: true });
      call.on('metadata', (md: grpc.Metadata) => {
        const v = md.get('x-version')[0];
        if (typeof v === 'string') out.version = v;
      });
      call.on('data', (c: Buffer) => {
        out.received += c.length;
        hash.update(c);
      });
      call.on('error', (err: grpc.ServiceError) => {
        signal.removeEventListener('abort', cancel);
        resolve(failed(out, err));
      });
      call.on('status', (st: grpc.StatusObject) => {
        signal.removeEventListener('abort', cancel);
        if (st.code !== grpc.status.OK) return; // reported by 'error'
        out.grpcStatus = st.code;
        out.echoedSha = hash.digest('hex');
        const sentSha = st.metadata.get('x-body-sha256')[0];
        const sentBytes = Number(st.metadata.get('x-body-bytes')[0]);
        out.intact = sentSha === out.echoedSha && sentBytes === out.received && out.received === o.size;
        resolve(out);
      });
    });
  return { once: o.method === 'Stream' ? stream : echo, close: () => client.close() };
}

function transport(o: ClientOptions): Transport {
  if (o.mode === 'h2') return h2Transport(o);
  if (o.mode === 'grpc') return grpcTransport(o);
  return { once: o.mode === 'tcp' ? tcpOnce : httpOnce, close: () => undefined };
}

export async function runClient(opts: ClientOptions): Promise<ClientReport> {
  const o = checkClientOptions(opts);
  // gRPC Stream sends a small request and checks what comes back against the server's trailer
  const payload = o.mode === 'grpc' && o.method === 'Stream' ? Buffer.alloc(0) : randomBytes(o.size);
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
  const t = transport(o);
  const one = t.once;
  const worker = async (): Promise<void> => {
    while (started < o.connections && !abort.signal.aborted) {
      started++;
      const t0r = performance.now();
      try {
        const r = await one(o, payload, abort.signal);
        report.bytesSent += r.sent;
        report.bytesReceived += r.received;
        const code = r.grpcStatus !== undefined ? grpcStatusName(r.grpcStatus) : r.status;
        if (code !== undefined) report.statusCodes[code] = (report.statusCodes[code] ?? 0) + 1;
        if (r.reply && !report.sample) report.sample = r.reply;
        if (r.version !== undefined) {
          const v = (report.versions ??= {});
          v[r.version] = (v[r.version] ?? 0) + 1;
        }
        const statusOk = r.grpcStatus !== undefined ? r.grpcStatus === grpc.status.OK : r.status === undefined || (r.status >= 200 && r.status < 300);
        if (r.text !== undefined && report.errorBody === undefined && !statusOk) report.errorBody = r.text;
        if (r.echoedSha !== undefined) echoed.add(r.echoedSha);
        // a failed answer has no body to check (an HTTP error page, a gRPC status): only its status counts
        const shaOk = r.intact ?? (r.echoedSha === sha256Sent || (o.mode !== 'tcp' && r.echoedSha === undefined));
        if (!shaOk) report.checksumMismatches++;
        if (shaOk && statusOk) {
          report.ok++;
          latencies.push(performance.now() - t0r);
        } else if (!statusOk) {
          report.errors++;
          const what = r.grpcStatus !== undefined ? `gRPC ${r.text ?? code}` : `HTTP ${r.status}`;
          if (report.errorSamples.length < 5 && !report.errorSamples.includes(what)) report.errorSamples.push(what);
        }
      } catch (e) {
        report.errors++;
        const msg = (e as Error).message;
        if (report.errorSamples.length < 5 && !report.errorSamples.includes(msg)) report.errorSamples.push(msg);
      }
      report.completed++;
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(o.concurrency, o.connections) }, worker));
  } finally {
    t.close();
  }
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
