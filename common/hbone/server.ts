// The HBONE server: accepts mutual TLS 1.3 (ALPN h2) connections whose client chain leads to the
// trust bundle and names a SPIFFE identity of its trust domain, and for each CONNECT stream asks
// a handler for a decision: deny (an HTTP status, 401/403) or allow with an upstream stream (the
// node proxy's connection to the destination app), which it then splices to the tunnel stream.
// Bad input is answered (405 for other methods, 400 for a malformed authority) or dropped, never
// fatal. Credentials rotate at runtime without touching open connections.
import {
  constants as h2,
  createSecureServer,
  type Http2SecureServer,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import { Socket, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Identity } from '../identity/spiffe';
import { verifyTlsPeer, type TrustBundle } from '../identity/verify';
import { createLogger, type Logger } from '../log';
import { isTarget, parseAuthority, type TunnelTarget } from './authority';
import { DEFAULT_PING_TIMEOUT_MS } from './client';
import { tunnelHeadersOf, type TunnelHeaders } from './headers';
import { millisFromEnv } from '../env';
import { bytesRead, destroySession, PingProbe } from './liveness';
import { DEFAULT_MAX_CONCURRENT_STREAMS, DEFAULT_WINDOWS, maxSessionMemoryMiB, TLS_VERSION, validateWindows, type WindowSettings } from './settings';
import { isRawSocket, type RawSocket } from './raw-socket';
import { abortSide, splice, type SpliceResult } from './splice';

export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/** What the handler learns about one CONNECT stream. */
export interface TunnelRequest {
  readonly peerIdentity: Identity;
  readonly peerSpiffeId: string;
  /** The `:authority` as sent, "ip:port". */
  readonly authority: string;
  readonly target: TunnelTarget;
  readonly headers: TunnelHeaders;
  /** Where the HBONE connection arrived (this listener). */
  readonly localAddress: Endpoint;
  /** The peer node proxy's address. */
  readonly remoteAddress: Endpoint;
  /** Aborted when the client gives up on the stream before the decision is acted on. */
  readonly signal: AbortSignal;
  /** The listener the connection arrived on, as named to serveConnection (undefined: this server's own). */
  readonly listener?: string;
}

export type Decision =
  | { readonly allow: false; readonly status: number; readonly reason: string }
  | { readonly allow: true; readonly upstream: Duplex | RawSocket; readonly onClose?: (result: SpliceResult) => void };

export type TunnelHandler = (request: TunnelRequest) => Promise<Decision>;

export function deny(status: 401 | 403 | number, reason: string): Decision {
  return { allow: false, status, reason };
}

/**
 * Allows the tunnel with `upstream`: a stream, or a RawSocket (an fd for the native engine to take
 * as it is; this server wraps it in a net.Socket).
 */
export function allow(upstream: Duplex | RawSocket, onClose?: (result: SpliceResult) => void): Decision {
  return { allow: true, upstream, onClose };
}

/**
 * Asks `handler` about a CONNECT, for both HBONE servers (this one and native/hbone-server.ts): the
 * allowing decision, or the status to refuse the stream with, logged — a handler that threw is 503
 * for a network error, else 500 ("HBONE tunnel not opened"); a denial answers its own 4xx/5xx, else
 * 500 ("HBONE tunnel denied").
 */
export async function decideTunnel(
  handler: TunnelHandler,
  request: TunnelRequest,
  log: Logger,
): Promise<Extract<Decision, { allow: true }> | { readonly allow: false; readonly refuse: number }> {
  let decision: Decision;
  try {
    decision = await handler(request);
  } catch (err) {
    const status = isNetworkError(err) ? 503 : 500;
    log.info(
      { peer: request.peerSpiffeId, authority: request.authority, status, err: err instanceof Error ? err.message : String(err) },
      'HBONE tunnel not opened',
    );
    return { allow: false, refuse: status };
  }
  if (decision.allow) return decision;
  const status = decision.status >= 400 && decision.status <= 599 ? decision.status : 500;
  log.info({ peer: request.peerSpiffeId, authority: request.authority, status, reason: decision.reason }, 'HBONE tunnel denied');
  return { allow: false, refuse: status };
}

export interface ServerCredentials {
  /** PEM: the server's leaf certificate first, then any intermediates. */
  readonly certChain: string;
  readonly key: string | Buffer;
  /** Roots client chains must lead to; clients must be in its trust domain. */
  readonly trustBundle: TrustBundle;
}

export interface HboneServerOptions {
  readonly credentials: ServerCredentials;
  readonly handler: TunnelHandler;
  readonly maxConcurrentStreams?: number;
  readonly windows?: WindowSettings;
  /** Drop a connection whose TLS handshake has not finished by then (default 10 s, DEFAULT_HANDSHAKE_TIMEOUT_MS). */
  readonly handshakeTimeoutMs?: number;
  /**
   * Close (GOAWAY) a connection that has had no open stream for this long (default 90 s, longer
   * than the client pool's 60 s idle timeout so that a pooled client normally closes first).
   */
  readonly idleTimeoutMs?: number;
  /**
   * PING a connection that delivered no byte for this long, ms (default 20 s: the client pool PINGs
   * every 10 s, so a live peer's connection is never silent that long; 0 turns it off). A peer that
   * vanished without FIN or RST (a node gone, a netns removed, a path black-holed) would otherwise
   * leave its connection, streams, upstreams and records here until TCP gave up, or for ever.
   */
  readonly keepaliveIntervalMs?: number;
  /** That PING unanswered for this long, with nothing else arriving meanwhile, destroys the connection and its streams, ms (default 3 s). */
  readonly pingTimeoutMs?: number;
  /** Told of each handshake, idle or PING timeout as it happens (for a Prometheus counter). */
  readonly onTimeout?: (kind: HboneServerTimeout) => void;
  readonly logger?: Logger;
}

/** Why the server dropped a connection on its own: handshake not finished, no stream open, no answer to a PING. */
export type HboneServerTimeout = 'handshake' | 'idle' | 'ping';

export interface HboneServerStats {
  connectionsAccepted: number;
  /** Handshakes that failed (bad chain, wrong TLS version or ALPN, garbage, timeout). */
  tlsErrors: number;
  /** Of tlsErrors: connections dropped because the handshake did not finish in time. */
  handshakeTimeouts: number;
  /** Connections closed because they had no open stream for the idle timeout. */
  idleTimeouts: number;
  /** Connections destroyed (with their streams) because a PING went unanswered: the peer vanished. */
  pingTimeouts: number;
  /** Connections whose verified chain named no acceptable identity. */
  connectionsRejected: number;
  connectionsActive: number;
  streamsOpened: number;
  streamsActive: number;
  /** Streams answered with a status other than 200, by status. */
  streamsRefused: Record<number, number>;
  bytesToUpstream: number;
  bytesToDownstream: number;
}

/** A server's counters before its first connection (both HBONE engines' servers start from it). */
export function emptyServerStats(): HboneServerStats {
  return {
    connectionsAccepted: 0,
    tlsErrors: 0,
    handshakeTimeouts: 0,
    idleTimeouts: 0,
    pingTimeouts: 0,
    connectionsRejected: 0,
    connectionsActive: 0,
    streamsOpened: 0,
    streamsActive: 0,
    streamsRefused: {},
    bytesToUpstream: 0,
    bytesToDownstream: 0,
  };
}

interface Peer {
  readonly identity: Identity;
  readonly spiffeId: string;
  /** Named by serveConnection; undefined when the connection came through listen(). */
  readonly listener?: string;
}

export type ListenOptions = { readonly host?: string; readonly port: number } | { readonly fd: number };

export class HboneServer {
  private readonly server: Http2SecureServer;
  private readonly peers = new WeakMap<Http2Session, Peer>();
  private readonly sessions = new Set<ServerHttp2Session>();
  /** TCP connections handed over by serveConnection, with the listener they arrived on. */
  private readonly arrivedOn = new WeakMap<Socket, string>();
  private readonly idle = new WeakMap<ServerHttp2Session, IdleWatch>();
  private readonly log: Logger;
  private credentials: ServerCredentials;
  private readonly idleTimeoutMs: number;
  private readonly keepaliveIntervalMs: number;
  private readonly pingTimeoutMs: number;
  private readonly counters: HboneServerStats = emptyServerStats();

  constructor(private readonly options: HboneServerOptions) {
    this.credentials = options.credentials;
    this.log = options.logger ?? createLogger('hbone-server');
    const windows = validateWindows(options.windows ?? DEFAULT_WINDOWS);
    this.server = createSecureServer({
      ...tlsContextOptions(options.credentials),
      requestCert: true,
      rejectUnauthorized: true,
      allowHTTP1: false,
      handshakeTimeout: options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      settings: {
        maxConcurrentStreams: options.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS,
        initialWindowSize: windows.streamWindow,
        maxFrameSize: windows.maxFrameSize,
      },
      maxSessionMemory: maxSessionMemoryMiB(windows),
      unknownProtocolTimeout: 1000,
      // TCP_NODELAY on every accepted connection: with Nagle + delayed ACKs a stream of 64 KiB
      // messages over a 1500-MTU link stalls ~40 ms per message (loopback's MTU hides it).
      noDelay: true,
    });
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.keepaliveIntervalMs = options.keepaliveIntervalMs ?? DEFAULT_SERVER_KEEPALIVE_INTERVAL_MS;
    this.pingTimeoutMs = options.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS;
    for (const [name, v, min] of [
      ['keepaliveIntervalMs', this.keepaliveIntervalMs, 0],
      ['pingTimeoutMs', this.pingTimeoutMs, 1],
    ] as const) {
      if (!(Number.isFinite(v) && v >= min)) throw new RangeError(`HBONE server ${name} must be a number of milliseconds ≥ ${min}, got ${v}`);
    }
    this.server.on('session', (session: ServerHttp2Session) => this.onSession(session, windows));
    this.server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      this.idle.get(stream.session as ServerHttp2Session)?.streamOpened(stream);
      stream.on('error', (err) => this.log.debug({ err: err.message }, 'HBONE stream error'));
      this.onStream(stream, headers).catch((err: unknown) => {
        // A stream that vanished mid-decision (session destroyed under it) must not take the process down.
        this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'HBONE stream handling failed');
        if (!stream.destroyed) stream.close(h2.NGHTTP2_INTERNAL_ERROR);
      });
    });
    this.server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      this.counters.tlsErrors++;
      if ((err as NodeJS.ErrnoException).code === 'ERR_TLS_HANDSHAKE_TIMEOUT') {
        this.counters.handshakeTimeouts++;
        this.options.onTimeout?.('handshake');
      }
      this.log.info({ remote: socket.remoteAddress, err: err.message }, 'HBONE handshake failed');
    });
    this.server.on('sessionError', (err: Error) => this.log.debug({ err: err.message }, 'HBONE session error'));
    this.server.on('unknownProtocol', (socket: TLSSocket) => {
      this.counters.tlsErrors++;
      this.log.info({ remote: socket.remoteAddress }, 'HBONE client did not negotiate ALPN h2; closing');
      socket.destroy();
    });
  }

  listen(options: ListenOptions): Promise<Endpoint> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(options, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.log.error({ err: err.message }, 'HBONE listener error'));
        resolve(this.address());
      });
    });
  }

  address(): Endpoint {
    const a = this.server.address() as AddressInfo | null;
    if (!a || typeof a === 'string') throw new Error('the HBONE server is not listening on an IP address');
    return { address: a.address, port: a.port };
  }

  /**
   * Serves a TCP connection another listener accepted: listeners in many network namespaces (one
   * per workload of an identity) can share one server — its TLS context (an OpenSSL context costs
   * 60–90 KiB), settings and handler. `listener` names where the connection arrived: the handler
   * sees it as TunnelRequest.listener, and closeListener(listener) ends just those connections.
   */
  serveConnection(socket: Socket, listener: string): void {
    this.arrivedOn.set(socket, listener);
    this.server.emit('connection', socket);
  }

  /**
   * Ends the connections that arrived on `listener` (serveConnection): GOAWAY at once, so open
   * tunnels can finish and the peer opens no new stream on them, destroyed after `graceMs`.
   * Resolves when they are all closed.
   */
  closeListener(listener: string, graceMs = 5_000): Promise<void> {
    const of = [...this.sessions].filter((s) => this.peers.get(s)?.listener === listener);
    return closeSessions(of, graceMs);
  }

  /** New credentials for new connections; connections already open keep theirs. */
  rotate(credentials: ServerCredentials): void {
    // requestCert/rejectUnauthorized are the server's own settings and stay as constructed.
    this.server.setSecureContext(tlsContextOptions(credentials));
    this.credentials = credentials;
  }

  stats(): Readonly<HboneServerStats> {
    return { ...this.counters, streamsRefused: { ...this.counters.streamsRefused } };
  }

  /**
   * Stops accepting, sends GOAWAY to every connection so open tunnels can finish, and destroys
   * what is still open after `graceMs`.
   */
  close(graceMs = 5_000): Promise<void> {
    // the listener's close waits for the connections it accepted; those handed over by
    // serveConnection are not its own, so the sessions are waited for themselves
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    return Promise.all([stopped, closeSessions([...this.sessions], graceMs)]).then(() => undefined);
  }

  private onSession(session: ServerHttp2Session, windows: WindowSettings): void {
    session.on('error', (err) => this.log.debug({ err: err.message }, 'HBONE connection error'));
    const socket = session.socket as TLSSocket;
    let peer: Peer;
    try {
      const verified = verifyTlsPeer(socket, this.credentials.trustBundle, { role: 'client' });
      peer = { identity: verified.identity, spiffeId: verified.spiffeId, listener: arrivedOn(this.arrivedOn, tcpOf(socket)) };
    } catch (err) {
      this.counters.connectionsRejected++;
      this.log.warn({ remote: socket.remoteAddress, err: err instanceof Error ? err.message : String(err) }, 'HBONE client refused');
      session.destroy(undefined, h2.NGHTTP2_INADEQUATE_SECURITY); // GOAWAY: the peer identity is not acceptable
      return;
    }
    this.peers.set(session, peer);
    this.sessions.add(session);
    this.counters.connectionsAccepted++;
    this.counters.connectionsActive++;
    const idle = new IdleWatch(session, this.idleTimeoutMs, () => {
      this.counters.idleTimeouts++;
      this.options.onTimeout?.('idle');
      this.log.info({ peer: peer.spiffeId, remote: socket.remoteAddress, idleMs: this.idleTimeoutMs }, 'HBONE connection idle (no open stream); closing it');
    });
    this.idle.set(session, idle);
    const silence = this.watchSilence(session, socket, peer);
    session.once('close', () => {
      idle.stop();
      silence?.stop();
      this.sessions.delete(session);
      this.counters.connectionsActive--;
    });
    const widen = (): void => session.setLocalWindowSize(windows.connectionWindow);
    if (session.connecting) session.once('connect', widen);
    else widen();
  }

  /**
   * PINGs the session when it delivered nothing for a whole keepaliveIntervalMs; unanswered (liveness.ts)
   * it is destroyed with its TCP socket and streams (their upstreams end, their records go).
   */
  private watchSilence(session: ServerHttp2Session, socket: TLSSocket, peer: Peer): { stop(): void } | undefined {
    if (this.keepaliveIntervalMs <= 0) return undefined;
    const probe = new PingProbe(session, this.pingTimeoutMs, (dead) => {
      this.counters.pingTimeouts++;
      this.options.onTimeout?.('ping');
      this.log.warn(
        {
          peer: peer.spiffeId,
          remote: socket.remoteAddress,
          remotePort: socket.remotePort,
          streams: this.idle.get(session)?.streams ?? 0,
          pingTimeoutMs: this.pingTimeoutMs,
        },
        'HBONE peer did not answer a PING and sent nothing; taking the connection as dead and closing it with its streams',
      );
      destroySession(session, [tcpOf(socket)], dead); // session.socket is a proxy that refuses destroy()
    });
    let heard = bytesRead(session);
    const timer = setInterval(() => {
      const now = bytesRead(session);
      if (now !== heard) heard = now;
      else probe.probe();
    }, this.keepaliveIntervalMs);
    timer.unref();
    return {
      stop: () => {
        clearInterval(timer);
        probe.stop();
      },
    };
  }

  private refuse(stream: ServerHttp2Stream, status: number): void {
    this.counters.streamsRefused[status] = (this.counters.streamsRefused[status] ?? 0) + 1;
    if (stream.closed || stream.destroyed || stream.headersSent) return;
    stream.respond({ [h2.HTTP2_HEADER_STATUS]: status }, { endStream: true });
  }

  private async onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Promise<void> {
    const session = stream.session;
    const peer = session && this.peers.get(session);
    if (!session || !peer) {
      stream.close(h2.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const method = headers[h2.HTTP2_HEADER_METHOD];
    if (method !== h2.HTTP2_METHOD_CONNECT) {
      if (!stream.closed && !stream.headersSent) {
        this.counters.streamsRefused[405] = (this.counters.streamsRefused[405] ?? 0) + 1;
        stream.respond({ [h2.HTTP2_HEADER_STATUS]: 405, allow: 'CONNECT' }, { endStream: true });
      }
      return;
    }
    const rawAuthority = headers[h2.HTTP2_HEADER_AUTHORITY];
    const authority = typeof rawAuthority === 'string' ? rawAuthority : '';
    const target = parseAuthority(authority);
    if (!isTarget(target)) {
      this.log.info({ peer: peer.spiffeId, authority, problem: target.problem }, 'HBONE CONNECT with a malformed authority');
      return this.refuse(stream, 400);
    }
    const socket = session.socket;
    const controller = new AbortController();
    const onEarlyClose = (): void => controller.abort();
    stream.once('close', onEarlyClose);
    const request: TunnelRequest = {
      peerIdentity: peer.identity,
      peerSpiffeId: peer.spiffeId,
      authority,
      target,
      headers: tunnelHeadersOf(headers),
      localAddress: { address: socket.localAddress ?? '', port: socket.localPort ?? 0 },
      remoteAddress: { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 },
      signal: controller.signal,
      listener: peer.listener,
    };

    const decision = await decideTunnel(this.options.handler, request, this.log);
    if (!decision.allow) return this.refuse(stream, decision.refuse);
    // From here on the handler holds resources for this stream (its upstream, and whatever its
    // onClose releases): every way out below ends the upstream and calls onClose exactly once.
    // a raw fd (for the native engine) is carried here as a socket of its own
    const upstream = isRawSocket(decision.upstream) ? socketOf(decision.upstream) : decision.upstream;
    const started = performance.now();
    const unopened = (error: Error): void => {
      abortSide(upstream);
      decision.onClose?.({ bytesToUpstream: 0, bytesToDownstream: 0, error, clean: false, durationMs: performance.now() - started });
    };
    if (upstream instanceof Socket && upstream.connecting) {
      const err = await connected(upstream);
      if (err) {
        this.log.info({ peer: peer.spiffeId, authority, err: err.message }, 'HBONE upstream unreachable');
        unopened(err);
        return this.refuse(stream, 503);
      }
    }
    stream.off('close', onEarlyClose);
    if (stream.closed || stream.destroyed || controller.signal.aborted) {
      unopened(new Error('the tunnel stream was cancelled by the client before it was opened'));
      return;
    }
    try {
      stream.respond({ [h2.HTTP2_HEADER_STATUS]: 200 });
    } catch (err) {
      unopened(err instanceof Error ? err : new Error(String(err)));
      throw err;
    }
    this.counters.streamsOpened++;
    this.counters.streamsActive++;
    splice(stream, upstream, (r) => {
      this.counters.streamsActive--;
      this.counters.bytesToUpstream += r.bytesToUpstream;
      this.counters.bytesToDownstream += r.bytesToDownstream;
      decision.onClose?.(r);
    });
  }
}

/** How long a connection may deliver nothing before the server PINGs it: twice the client pool's keepalive interval. */
export const DEFAULT_SERVER_KEEPALIVE_INTERVAL_MS = 20_000;
/** The node proxy's setting for its HBONE servers' `keepaliveIntervalMs` (docs/hbone.md, "Server liveness"); their PING timeout is the client's, NODEMESH_HBONE_PING_TIMEOUT_MS. */
export const SERVER_KEEPALIVE_ENV = 'NODEMESH_HBONE_SERVER_KEEPALIVE_INTERVAL_MS';

/** `keepaliveIntervalMs` from NODEMESH_HBONE_SERVER_KEEPALIVE_INTERVAL_MS (the default where unset; 0 = off); anything else than a whole number ≥ 0 throws, naming the variable. */
export function serverKeepaliveFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  return millisFromEnv(env, SERVER_KEEPALIVE_ENV, DEFAULT_SERVER_KEEPALIVE_INTERVAL_MS, 0);
}

/** How long a client's TLS handshake may take before its connection is dropped (counted as a handshake timeout). */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** The node proxy's setting for its HBONE servers' `handshakeTimeoutMs`, both engines (docs/hbone.md, "Liveness"). */
export const HANDSHAKE_TIMEOUT_ENV = 'NODEMESH_HBONE_HANDSHAKE_TIMEOUT_MS';

/** `handshakeTimeoutMs` from NODEMESH_HBONE_HANDSHAKE_TIMEOUT_MS (the default where unset); anything else than a whole number ≥ 1 throws, naming the variable. */
export function handshakeTimeoutFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  return millisFromEnv(env, HANDSHAKE_TIMEOUT_ENV, DEFAULT_HANDSHAKE_TIMEOUT_MS, 1);
}

/** Server side idle timeout: longer than the client pool's (60 s) so the client normally closes first. */
export const DEFAULT_IDLE_TIMEOUT_MS = 90_000;

/**
 * Closes a session that has had no open stream for `ms`: a peer that completed the handshake
 * (or never sent the HTTP/2 preface) cannot hold a connection and its memory forever. Streams
 * that are open keep the session alive however quiet they are (a tunnel may idle for hours).
 */
class IdleWatch {
  private active = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly session: ServerHttp2Session,
    private readonly ms: number,
    private readonly onIdle: () => void,
  ) {
    this.arm();
  }

  /** Streams open now. */
  get streams(): number {
    return Math.max(0, this.active);
  }

  streamOpened(stream: ServerHttp2Stream): void {
    this.active++;
    this.disarm();
    stream.once('close', () => {
      this.active--;
      if (this.active === 0) this.arm();
    });
  }

  stop(): void {
    this.disarm();
    this.active = -1;
  }

  private arm(): void {
    if (this.active !== 0 || this.session.destroyed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.active !== 0 || this.session.destroyed) return;
      this.onIdle();
      this.session.close(); // GOAWAY; with no stream open the socket closes at once
      const hard = setTimeout(() => this.session.destroy(), 1_000);
      hard.unref();
    }, this.ms);
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

function tlsContextOptions(c: ServerCredentials): { cert: string; key: string | Buffer; ca: string; minVersion: 'TLSv1.3'; maxVersion: 'TLSv1.3' } {
  return { cert: c.certChain, key: c.key, ca: c.trustBundle.pem, minVersion: TLS_VERSION, maxVersion: TLS_VERSION };
}

/**
 * GOAWAY to each session now, destroy those still open after `graceMs`; resolves when all closed.
 * node:http2 finishes destroying a session only once its pending write to the socket completes,
 * and a peer that stopped reading keeps that write pending as long as TCP retries (minutes): the
 * TCP socket under the session is destroyed with it, which cancels the write.
 */
function closeSessions(sessions: readonly ServerHttp2Session[], graceMs: number): Promise<void> {
  const open = sessions.filter((s) => !s.closed && !s.destroyed);
  if (open.length === 0) return Promise.resolve();
  const closed = open.map((s) => new Promise<void>((resolve) => s.once('close', () => resolve())));
  const tcp = open.map((s) => tcpOf(s.socket as TLSSocket));
  for (const s of open) s.close();
  const timer = setTimeout(() => {
    for (const s of open) s.destroy();
    for (const t of tcp) t?.destroy();
  }, graceMs);
  timer.unref();
  return Promise.all(closed).then(() => clearTimeout(timer));
}

/**
 * The TCP socket under a server-side TLS socket. tls.Server wraps each accepted socket in a
 * TLSSocket that keeps it as `_parent` (Node has no public accessor); test/hbone/shared-listeners
 * fails if that ever changes.
 */
function tcpOf(tls: TLSSocket): Socket | undefined {
  return (tls as TLSSocket & { _parent?: Socket })._parent;
}

function arrivedOn(map: WeakMap<Socket, string>, tcp: Socket | undefined): string | undefined {
  return tcp ? map.get(tcp) : undefined;
}

/** Errors from the network stack (ECONNREFUSED, EHOSTUNREACH, ETIMEDOUT, …) mean the upstream is unavailable. */
export function isNetworkError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  // errno names (ECONNREFUSED, EAI_AGAIN, …); node's own ERR_* codes are programming errors.
  return typeof code === 'string' && /^E[A-Z0-9_]+$/.test(code) && !code.startsWith('ERR_');
}

export function connected(socket: Socket): Promise<Error | undefined> {
  return new Promise((resolve) => {
    const onConnect = (): void => {
      socket.off('error', onError);
      resolve(undefined);
    };
    const onError = (err: Error): void => {
      socket.off('connect', onConnect);
      resolve(err);
    };
    socket.once('connect', onConnect);
    socket.once('error', onError);
  });
}

/** A RawSocket as a half-open net.Socket, its prefix read first. */
function socketOf(raw: RawSocket): Duplex {
  const s = new Socket({ fd: raw.fd, readable: true, writable: true, allowHalfOpen: true });
  if (raw.prefix?.length) s.unshift(raw.prefix);
  return s;
}
