// Sending one request attempt to one endpoint: HTTP/1.1 over a keep-alive pool per endpoint, or
// HTTP/2 (h2c; gRPC) over one pooled session per endpoint. For a mesh endpoint the connection is an
// HBONE tunnel (mTLS HTTP/2 CONNECT to its node proxy, with the waypoint's own identity); otherwise
// plain TCP. The caller writes the body into `sink` and gets the response head (or a classified
// failure) from `response`.
import { connect as h2connect, constants as h2c, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import { HboneClient } from '../../common/hbone/client';
import { TunnelRefusedError } from '../../common/hbone/errors';
import { DEFAULT_WINDOWS, maxSessionMemoryMiB } from '../../common/hbone/settings';
import type { TrustBundle } from '../../common/identity/verify';
import type { CompiledCluster, UpstreamEndpoint } from '../config/clusters';
import { H1Pool, type H1CallListener, type H1FailureKind, type H1ResponseHead } from '../http1/client';

export interface MeshCredentialsValue {
  readonly certChain: string;
  readonly key: string;
  readonly trustBundle: TrustBundle;
  readonly spiffeId: string;
  readonly notAfter?: Date;
}

/** The waypoint's own workload certificate, for its HBONE listener and HBONE to mesh endpoints. */
export interface MeshCredentials {
  /** The valid certificate now (never an expired one), or undefined. */
  current(): MeshCredentialsValue | undefined;
  /** Hear renewals (the HBONE listener rotates to the new certificate). */
  onChange?(listener: (c: MeshCredentialsValue) => void): () => void;
}

export type FailureKind = 'connect-failure' | 'reset' | 'timeout' | 'overflow';

export class UpstreamFailure extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
  ) {
    super(message);
    this.name = 'UpstreamFailure';
  }
}

export interface UpstreamHead {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Readable;
  /** The whole body when it came with the head (HTTP/1.1, http1/client.ts): the response is complete and `body` need not be read. */
  readonly whole?: Buffer;
  /** Call `done` with the trailers (empty when none) once the body has ended. */
  onComplete(done: (trailers: Record<string, string | string[] | undefined>) => void): void;
}

/** Hears how one attempt ends: exactly one call, never from inside `send`. */
export interface AttemptListener {
  onHead(head: UpstreamHead): void;
  onFailure(failure: UpstreamFailure): void;
}

/** Where an attempt's request body goes (a Writable, or the HTTP/1.1 client's call). */
export interface BodySink {
  write(chunk: Buffer): boolean;
  end(chunk?: Buffer): void;
  on(event: 'error', listener: (err: Error) => void): unknown;
  once(event: 'drain', listener: () => void): unknown;
  off(event: 'drain', listener: () => void): unknown;
}

export interface Attempt {
  readonly sink: BodySink;
  /** Abandon the attempt (timeout, client gone). */
  abort(): void;
}

export interface AttemptRequest {
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  /** Lower-case names, no pseudo-headers or hop-by-hop headers. */
  readonly headers: Record<string, string | string[] | undefined>;
}

export interface TransportStats {
  connectionsOpened: number;
  hboneTunnels: number;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'http2-settings', 'host']);

/** Receive windows of the waypoint's upstream HTTP/2 sessions (plain h2c and inside HBONE). */
export const UPSTREAM_WINDOWS = DEFAULT_WINDOWS;

export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith(':');
}

export class UpstreamTransport {
  private readonly pools = new Map<string, H1Pool>();
  private readonly sessions = new Map<string, PooledSession>();
  readonly hbone: HboneClient;
  readonly stats: TransportStats = { connectionsOpened: 0, hboneTunnels: 0 };

  constructor(
    private readonly credentials: MeshCredentials | undefined,
    /** An idempotent request was sent again on a new connection (http1/client.ts): counted per cluster. */
    private readonly onResent?: (cluster: string) => void,
  ) {
    this.hbone = new HboneClient({ idleTimeoutMs: 60_000 });
  }

  /** Send one attempt; `listener` hears its response head or failure (later, never from inside send). */
  send(cluster: CompiledCluster, endpoint: UpstreamEndpoint, req: AttemptRequest, listener: AttemptListener): Attempt {
    return cluster.http2 ? this.sendH2(cluster, endpoint, req, listener) : this.sendH1(cluster, endpoint, req, listener);
  }

  /** Endpoint objects live as long as their EDS update: their pool key is built once per object. */
  private readonly keys = new WeakMap<UpstreamEndpoint, { cluster: string; key: string }>();

  private key(cluster: CompiledCluster, e: UpstreamEndpoint): string {
    const k = this.keys.get(e);
    if (k && k.cluster === cluster.name) return k.key;
    const key = `${cluster.name}|${e.address}:${e.port}|${e.hbone ? 'hbone' : 'tcp'}`;
    this.keys.set(e, { cluster: cluster.name, key });
    return key;
  }

  /** An HBONE tunnel to a mesh endpoint, presenting the waypoint's identity and checking the endpoint's. */
  tunnel(e: UpstreamEndpoint, timeoutMs: number): Promise<ClientHttp2Stream> {
    const creds = this.credentials?.current();
    const hb = e.hbone!;
    if (!creds)
      return Promise.reject(
        new UpstreamFailure(
          'connect-failure',
          `endpoint ${e.address}:${e.port} is in the mesh but the waypoint has no workload certificate (start it with --control so it can get one)`,
        ),
      );
    if (!hb.identity)
      return Promise.reject(
        new UpstreamFailure(
          'connect-failure',
          `endpoint ${e.address}:${e.port} is in the mesh but its metadata names no identity (filter_metadata.nodemesh.identity)`,
        ),
      );
    this.stats.hboneTunnels++;
    return this.hbone
      .open({
        source: { certChain: creds.certChain, key: creds.key },
        trustBundle: creds.trustBundle,
        destination: `${hb.address.includes(':') ? `[${hb.address}]` : hb.address}:${hb.port}`,
        expectedIdentity: hb.identity,
        authority: `${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}`,
        timeoutMs,
      })
      .catch((err: unknown) => {
        throw new UpstreamFailure(
          err instanceof TunnelRefusedError && err.status === 403 ? 'connect-failure' : 'connect-failure',
          err instanceof Error ? err.message : String(err),
        );
      });
  }

  private sendH1(cluster: CompiledCluster, e: UpstreamEndpoint, req: AttemptRequest, listener: AttemptListener): Attempt {
    // The waypoint's own HTTP/1.1 client (http1/client.ts), one write per request head, over plain
    // TCP or over pooled HBONE tunnels (one tunnel per connection, as a TCP connection would be).
    const key = this.key(cluster, e);
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new H1Pool({
        host: e.address,
        port: e.port,
        maxConnections: cluster.breakers.maxConnections,
        connectTimeoutMs: cluster.connectTimeoutMs,
        open: e.hbone ? (done) => this.tunnel(e, cluster.connectTimeoutMs).then((st) => done(undefined, st), done) : undefined,
        onResent: this.onResent ? () => this.onResent!(cluster.name) : undefined,
      });
      this.pools.set(key, pool);
    } else pool.o.maxConnections = cluster.breakers.maxConnections;
    // The call is the attempt: its body sink and its abort.
    return pool.request(req.method, req.path, req.authority, req.headers, new H1Outcome(listener));
  }

  /** The pooled HTTP/2 session to an endpoint: `cb` gets it once connected (at once when it is). */
  private session(cluster: CompiledCluster, e: UpstreamEndpoint, cb: (err: UpstreamFailure | undefined, s?: ClientHttp2Session) => void): void {
    const key = this.key(cluster, e);
    const cur = this.sessions.get(key);
    if (cur) {
      if (cur.session) return cb(undefined, cur.session);
      cur.waiting.push(cb);
      return;
    }
    const entry: PooledSession = { session: undefined, waiting: [cb], ready: undefined };
    this.sessions.set(key, entry);
    const settle = (err: UpstreamFailure | undefined, s?: ClientHttp2Session): void => {
      if (err && this.sessions.get(key) === entry) this.sessions.delete(key);
      entry.session = err ? undefined : s;
      const waiting = entry.waiting;
      entry.waiting = [];
      for (const w of waiting) w(err, s);
    };
    entry.ready = this.connectSession(cluster, e).then(
      (s) => {
        const forget = (): void => {
          if (this.sessions.get(key) === entry) this.sessions.delete(key);
        };
        s.on('error', forget);
        s.on('goaway', forget);
        s.on('close', forget);
        s.unref();
        settle(undefined, s);
        return s;
      },
      (err: unknown) => {
        settle(err instanceof UpstreamFailure ? err : new UpstreamFailure('connect-failure', String(err)));
        return undefined;
      },
    );
  }

  private async connectSession(cluster: CompiledCluster, e: UpstreamEndpoint): Promise<ClientHttp2Session> {
    const authority = `${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}`;
    const tunnel = e.hbone ? await this.tunnel(e, cluster.connectTimeoutMs) : undefined;
    this.stats.connectionsOpened++;
    // Receive windows sized as HBONE's (common/hbone/settings.ts), not node:http2's 64 KiB: with
    // those, streams sharing the session (gRPC streams to one endpoint) stall behind one whose
    // downstream reads slowly — two 16 MiB gRPC streams over an HBONE upstream took 13 s.
    // Plain TCP with TCP_NODELAY: HEADERS and DATA frames of a request go out at once, not held
    // back by Nagle until the previous segment is acknowledged.
    const s = h2connect(`http://${authority}`, {
      createConnection: tunnel ? () => tunnel : () => netConnect({ host: e.address, port: e.port, noDelay: true }),
      settings: { enablePush: false, initialWindowSize: UPSTREAM_WINDOWS.streamWindow, maxFrameSize: UPSTREAM_WINDOWS.maxFrameSize },
      maxSessionMemory: maxSessionMemoryMiB(UPSTREAM_WINDOWS),
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        s.destroy();
        reject(new UpstreamFailure('connect-failure', `no HTTP/2 connection to ${authority} within ${cluster.connectTimeoutMs} ms`));
      }, cluster.connectTimeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.setLocalWindowSize(UPSTREAM_WINDOWS.connectionWindow);
        resolve();
      });
      s.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new UpstreamFailure('connect-failure', `upstream connect error: ${err.message}`));
      });
    });
    return s;
  }

  private sendH2(cluster: CompiledCluster, e: UpstreamEndpoint, req: AttemptRequest, listener: AttemptListener): Attempt {
    const sink = new PassThrough();
    const att = new H2Attempt(sink, listener);
    this.session(cluster, e, (err, s) => {
      if (err) return att.fail(err);
      if (att.aborted) return att.fail(new UpstreamFailure('reset', 'attempt aborted'));
      const head: Record<string, string | string[] | number | undefined> = {
        [h2c.HTTP2_HEADER_METHOD]: req.method,
        [h2c.HTTP2_HEADER_PATH]: req.path,
        [h2c.HTTP2_HEADER_AUTHORITY]: req.authority,
        [h2c.HTTP2_HEADER_SCHEME]: 'http',
      };
      for (const k in req.headers) if (k.charCodeAt(0) !== 58 /* : */) head[k] = req.headers[k];
      let st: ClientHttp2Stream;
      try {
        st = s!.request(head);
      } catch (e2) {
        return att.fail(new UpstreamFailure('reset', `upstream request refused: ${e2 instanceof Error ? e2.message : String(e2)}`));
      }
      att.start(st);
    });
    return att;
  }

  /** The HTTP/2 sessions open to upstream endpoints now (admin, tests). */
  async h2Sessions(): Promise<ClientHttp2Session[]> {
    const all = await Promise.all([...this.sessions.values()].map((e) => e.ready));
    return all.flatMap((s) => (s && !s.destroyed ? [s] : []));
  }

  close(): void {
    for (const p of this.pools.values()) p.close();
    this.pools.clear();
    for (const e of this.sessions.values()) void e.ready?.then((s) => s?.destroy());
    this.sessions.clear();
    this.hbone.destroy();
  }
}

interface PooledSession {
  session: ClientHttp2Session | undefined;
  waiting: Array<(err: UpstreamFailure | undefined, s?: ClientHttp2Session) => void>;
  ready: Promise<ClientHttp2Session | undefined> | undefined;
}

/** The HTTP/1.1 client's outcome for an attempt, in the transport's terms. */
class H1Outcome implements H1CallListener {
  constructor(private readonly listener: AttemptListener) {}
  onHead(head: H1ResponseHead): void {
    this.listener.onHead(head);
  }
  onFailure(kind: H1FailureKind, message: string): void {
    this.listener.onFailure(new UpstreamFailure(kind, message));
  }
}

/** An HTTP/2 attempt: the request body goes to `sink` until the stream exists, then to it. */
class H2Attempt implements Attempt {
  aborted = false;
  private stream: ClientHttp2Stream | undefined;
  private settled = false;
  private trailers: IncomingHttpHeaders = {};
  private closed = false;
  private readonly ended: Array<(t: IncomingHttpHeaders) => void> = [];
  constructor(
    readonly sink: PassThrough,
    private readonly listener: AttemptListener,
  ) {}

  fail(f: UpstreamFailure): void {
    if (this.settled) return;
    this.settled = true;
    this.listener.onFailure(f);
  }

  start(st: ClientHttp2Stream): void {
    this.stream = st;
    this.sink.pipe(st);
    st.once('trailers', (t: IncomingHttpHeaders) => (this.trailers = t));
    st.once('response', (h: IncomingHttpHeaders) => {
      if (this.settled) return;
      this.settled = true;
      const status = Number(h[h2c.HTTP2_HEADER_STATUS]) || 502;
      const headers: Record<string, string | string[] | undefined> = {};
      for (const k in h) if (k.charCodeAt(0) !== 58) headers[k] = h[k];
      this.listener.onHead({ status, headers, body: st, onComplete: (done) => this.whenClosed(done) });
    });
    st.once('error', (err: Error) => !this.settled && this.fail(new UpstreamFailure('reset', `upstream reset: ${err.message}`)));
    st.once('close', () => {
      this.closed = true;
      for (const f of this.ended) f(this.trailers);
      // Built only when it is the outcome (an Error per request, with its stack, was a third of the GC).
      if (!this.settled) this.fail(new UpstreamFailure('reset', `upstream reset before response headers (RST ${st.rstCode})`));
    });
  }

  /** Trailers are known once the stream closed. */
  private whenClosed(done: (t: IncomingHttpHeaders) => void): void {
    if (this.closed) done(this.trailers);
    else this.ended.push(done);
  }

  abort(): void {
    this.aborted = true;
    this.sink.destroy();
    if (this.stream && !this.stream.destroyed) this.stream.close(h2c.NGHTTP2_CANCEL);
  }
}
