// The HBONE server on the native engine (native/hbone.ts), with common/hbone/server.ts's contract:
// the same options, handler (TunnelRequest -> allow(upstream) / deny(status)), statuses, limits,
// stats and listener bookkeeping. The engine runs TLS, HTTP/2 and the bytes; TypeScript verifies
// each connection's peer identity (the DER chain, common/identity/verify.ts), parses the authority,
// asks the handler, and hands the allowed upstream socket to the engine.
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { isTarget, parseAuthority } from '../common/hbone/authority';
import { tunnelHeadersOf } from '../common/hbone/headers';
import {
  connected,
  DEFAULT_IDLE_TIMEOUT_MS,
  decideTunnel,
  type Endpoint,
  type HboneServerOptions,
  emptyServerStats,
  type HboneServerStats,
  type ServerCredentials,
  type TunnelRequest,
} from '../common/hbone/server';
import { DEFAULT_PING_TIMEOUT_MS } from '../common/hbone/client';
import { DEFAULT_MAX_CONCURRENT_STREAMS, DEFAULT_WINDOWS, validateWindows } from '../common/hbone/settings';
import { isRawSocket, type RawSocket } from '../common/hbone/raw-socket';
import { abortSide, type SpliceResult } from '../common/hbone/splice';
import type { Identity } from '../common/identity/spiffe';
import { verifyPeerChain } from '../common/identity/verify';
import { createLogger, type Logger } from '../common/log';
import { call } from './binding';
import { type EngineSocket, NativeConnection, NativeTlsContext, type NativeConnectionOptions, type NativeStream, type NativeStreamResult } from './hbone';

/**
 * Upstreams handed to the engine: their stream (live counts, reset for a policy re-check) and,
 * once ended, their final counts. The socket object itself is destroyed in Node by then.
 */
const handedOver = new WeakMap<Duplex | RawSocket, { stream?: NativeStream; final?: { toUpstream: number; toDownstream: number } }>();

/**
 * Resets an allowed upstream: through the engine when it moved there, otherwise as
 * common/hbone/splice.ts's abortSide does (a raw fd not handed over: RST and closed).
 */
export function cutUpstream(up: Duplex | RawSocket): void {
  const h = handedOver.get(up);
  if (h) h.stream?.reset();
  else abortUpstream(up);
}

function abortUpstream(up: Duplex | RawSocket): void {
  if (isRawSocket(up)) call((b) => b.hboneResetFd(up.fd));
  else abortSide(up);
}

/** Byte counts of an allowed upstream the engine moves, live or final (undefined: not handed over). */
export function upstreamBytes(up: Duplex | RawSocket): { toUpstream: number; toDownstream: number } | undefined {
  const h = handedOver.get(up);
  if (!h) return undefined;
  if (h.final) return h.final;
  const b = h.stream?.bytes();
  return { toUpstream: b?.in ?? 0, toDownstream: b?.out ?? 0 };
}

export interface NativeHboneServerOptions extends HboneServerOptions {
  /**
   * The engine PINGs each connection every 10 s (the server side too: a peer that vanished without
   * FIN or RST leaves no stream behind); one unanswered this long, with nothing read meanwhile,
   * closes it (default DEFAULT_PING_TIMEOUT_MS; the node proxy passes NODEMESH_HBONE_PING_TIMEOUT_MS).
   */
  readonly pingTimeoutMs?: number;
}

interface ConnState {
  readonly conn: NativeConnection;
  readonly listener?: string;
  readonly local: Endpoint;
  readonly remote: Endpoint;
  peer?: { identity: Identity; spiffeId: string };
  readonly closed: Promise<void>;
}

export class NativeHboneServer {
  private readonly log: Logger;
  private context: NativeTlsContext;
  private credentials: ServerCredentials;
  private readonly options: NativeConnectionOptions;
  private readonly conns = new Set<ConnState>();
  private readonly counters: HboneServerStats = emptyServerStats();

  constructor(private readonly o: NativeHboneServerOptions) {
    this.log = o.logger ?? createLogger('hbone-server');
    this.credentials = o.credentials;
    this.context = contextOf(o.credentials);
    const w = validateWindows(o.windows ?? DEFAULT_WINDOWS);
    this.options = {
      streamWindow: w.streamWindow,
      connectionWindow: w.connectionWindow,
      maxFrameSize: w.maxFrameSize,
      maxConcurrentStreams: o.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS,
      handshakeTimeoutMs: o.handshakeTimeoutMs ?? 10_000,
      idleTimeoutMs: o.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      keepaliveIntervalMs: 10_000,
      pingTimeoutMs: o.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS,
    };
  }

  /** Serves a TCP connection accepted elsewhere (HboneServer.serveConnection's contract). */
  serveConnection(socket: Socket, listener?: string): void {
    const local = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 };
    const remote = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    const bundle = this.credentials.trustBundle;
    let resolveClosed!: () => void;
    const closed = new Promise<void>((r) => (resolveClosed = r));
    let state: ConnState;
    let conn: NativeConnection;
    try {
      conn = new NativeConnection(socket, this.context, true, this.options, {
        ready: (chain) => {
          try {
            const v = verifyPeerChain(chain, bundle, { role: 'client' });
            state.peer = { identity: v.identity, spiffeId: v.spiffeId };
          } catch (err) {
            this.counters.connectionsRejected++;
            this.log.warn({ remote: remote.address, err: (err as Error).message }, 'HBONE client refused');
            conn.destroy('the client identity was refused', true);
            return;
          }
          this.counters.connectionsAccepted++;
          this.counters.connectionsActive++;
        },
        closed: (reason) => {
          this.conns.delete(state);
          if (state.peer) this.counters.connectionsActive--;
          else if (!reason.startsWith('the client identity')) {
            this.counters.tlsErrors++;
            if (reason === 'handshake-timeout') {
              this.counters.handshakeTimeouts++;
              this.o.onTimeout?.('handshake');
            }
            this.log.info({ remote: remote.address, err: reason }, 'HBONE handshake failed');
          }
          if (reason === 'idle-timeout') {
            this.counters.idleTimeouts++;
            this.o.onTimeout?.('idle');
          }
          // the engine's liveness verdict (hbone_engine.cc), counted as HboneServer counts its own
          if (state.peer && reason.startsWith('the peer did not answer an HTTP/2 PING')) {
            this.counters.pingTimeouts++;
            this.o.onTimeout?.('ping');
          }
          resolveClosed();
        },
        request: (token, method, authority, headers) => void this.onRequest(state, token, method, authority, headers),
      });
    } catch (err) {
      this.counters.tlsErrors++;
      this.log.info({ remote: remote.address, err: (err as Error).message }, 'HBONE connection not served');
      return;
    }
    state = { conn, listener, local, remote, closed };
    this.conns.add(state);
  }

  /** Ends the connections that arrived on `listener`: GOAWAY now, destroyed after `graceMs`. */
  closeListener(listener: string, graceMs = 5_000): Promise<void> {
    const of = [...this.conns].filter((c) => c.listener === listener);
    for (const c of of) c.conn.close(graceMs);
    return Promise.all(of.map((c) => c.closed)).then(() => undefined);
  }

  /** New credentials for new connections; open ones keep theirs. */
  rotate(credentials: ServerCredentials): void {
    const next = contextOf(credentials);
    this.context.free();
    this.context = next;
    this.credentials = credentials;
  }

  stats(): Readonly<HboneServerStats> {
    return { ...this.counters, streamsRefused: { ...this.counters.streamsRefused } };
  }

  /** GOAWAY to every connection; what is open after `graceMs` is destroyed. */
  close(graceMs = 5_000): Promise<void> {
    const all = [...this.conns];
    for (const c of all) c.conn.close(graceMs);
    return Promise.all(all.map((c) => c.closed)).then(() => this.context.free());
  }

  private refuse(token: number, status: number): void {
    this.counters.streamsRefused[status] = (this.counters.streamsRefused[status] ?? 0) + 1;
    NativeConnection.answer(token, status);
  }

  private async onRequest(c: ConnState, token: number, _method: string, authority: string, headers: Record<string, string>): Promise<void> {
    const peer = c.peer;
    if (!peer) {
      this.refuse(token, 403); // a refused identity: its connection is going away
      return;
    }
    const target = parseAuthority(authority);
    if (!isTarget(target)) {
      this.log.info({ peer: peer.spiffeId, authority, problem: target.problem }, 'HBONE CONNECT with a malformed authority');
      return this.refuse(token, 400);
    }
    const request = new NativeTunnelRequest(peer, authority, target, tunnelHeadersOf(headers), c);
    NativeConnection.watch(token, () => request.cancel());
    const decision = await decideTunnel(this.o.handler, request, this.log);
    if (!decision.allow) {
      NativeConnection.unwatch(token);
      return this.refuse(token, decision.refuse);
    }
    const upstream = decision.upstream;
    const started = performance.now();
    const unopened = (error: Error): void => {
      abortUpstream(upstream);
      decision.onClose?.({ bytesToUpstream: 0, bytesToDownstream: 0, error, clean: false, durationMs: performance.now() - started });
    };
    if (!isRawSocket(upstream) && !(upstream instanceof Socket)) {
      NativeConnection.unwatch(token);
      unopened(new Error('the native HBONE engine needs a TCP socket as upstream'));
      return this.refuse(token, 500);
    }
    if (!isRawSocket(upstream) && upstream.connecting) {
      const err = await connected(upstream);
      if (err) {
        NativeConnection.unwatch(token);
        unopened(err);
        return this.refuse(token, 503);
      }
    }
    if (request.cancelled) {
      unopened(new Error('the tunnel stream was cancelled by the client before it was opened'));
      return;
    }
    NativeConnection.unwatch(token);
    this.counters.streamsOpened++;
    this.counters.streamsActive++;
    const books: { stream?: NativeStream; final?: { toUpstream: number; toDownstream: number } } = {};
    handedOver.set(upstream, books);
    const onEnd = (r: NativeStreamResult): void => {
      books.final = { toUpstream: r.bytesIn, toDownstream: r.bytesOut };
      this.counters.streamsActive--;
      this.counters.bytesToUpstream += r.bytesIn;
      this.counters.bytesToDownstream += r.bytesOut;
      const result: SpliceResult = {
        bytesToUpstream: r.bytesIn,
        bytesToDownstream: r.bytesOut,
        clean: r.clean,
        error: r.clean
          ? undefined
          : Object.assign(new Error(`the tunnel ended: ${r.reason || 'reset'}`), { code: /^E[A-Z]+$/.test(r.reason) ? r.reason : undefined }),
        durationMs: performance.now() - started,
      };
      decision.onClose?.(result);
    };
    let handle: NativeStream | undefined;
    try {
      handle = NativeConnection.answer(token, 200, upstream as EngineSocket, onEnd);
    } catch (err) {
      this.counters.streamsActive--;
      unopened(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    books.stream = handle;
  }
}

/**
 * One CONNECT as the handler sees it. A class, not an object literal with a `signal` getter: V8
 * builds such a literal through its runtime for every stream (~2-5 µs). The signal's
 * AbortController is made only if the handler reads it (~8 µs per stream).
 */
class NativeTunnelRequest implements TunnelRequest {
  readonly peerIdentity: Identity;
  readonly peerSpiffeId: string;
  readonly localAddress: Endpoint;
  readonly remoteAddress: Endpoint;
  readonly listener?: string;
  cancelled = false;
  private controller?: AbortController;

  constructor(
    peer: { identity: Identity; spiffeId: string },
    readonly authority: string,
    readonly target: TunnelRequest['target'],
    readonly headers: TunnelRequest['headers'],
    c: { local: Endpoint; remote: Endpoint; listener?: string },
  ) {
    this.peerIdentity = peer.identity;
    this.peerSpiffeId = peer.spiffeId;
    this.localAddress = c.local;
    this.remoteAddress = c.remote;
    this.listener = c.listener;
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.cancelled) this.controller.abort();
    }
    return this.controller.signal;
  }

  /** The client gave up on the stream. */
  cancel(): void {
    this.cancelled = true;
    this.controller?.abort();
  }
}

function contextOf(c: ServerCredentials): NativeTlsContext {
  return new NativeTlsContext(c.certChain, c.key, c.trustBundle.pem, true);
}
