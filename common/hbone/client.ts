// The HBONE client: opens a tunnel (an HTTP/2 CONNECT stream over mutual TLS 1.3) to a
// destination's port 15008 on behalf of a source workload, and hands back the stream once the
// server answered 200. The server must prove the expected SPIFFE identity with a chain to the
// trust bundle. Sessions are pooled per (source identity, destination, expected identity).
import { X509Certificate } from 'node:crypto';
import { connect as h2connect, constants as h2, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { connect as tlsConnect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { splitPem } from '../identity/pem';
import { formatSpiffeId, toIdentity, type Identity } from '../identity/spiffe';
import { clientVerification, spiffeIdOf, type TrustBundle } from '../identity/verify';
import type { Logger } from '../log';
import { formatAuthority, targetOf, type TunnelTarget } from './authority';
import { TunnelConnectError, TunnelRefusedError } from './errors';
import { requestHeaders, type TunnelHeaders } from './headers';
import { bindTransport, SessionPool } from './pool';
import { millisFromEnv } from '../env';
import { ALPN_H2, DEFAULT_WINDOWS, maxSessionMemoryMiB, TLS_VERSION, validateWindows, type WindowSettings } from './settings';

/** A workload's certificate and key, as node:tls takes them. */
export interface WorkloadCredentials {
  /** PEM: the leaf certificate first, then any intermediates. */
  readonly certChain: string;
  /** PEM private key of the leaf. */
  readonly key: string | Buffer;
}

/**
 * Makes the TCP connection under a new HBONE connection, e.g. from inside the source workload's
 * network namespace (native `connectInNetns`). Resolves with a connected socket.
 */
export type Dialer = (host: string, port: number) => Promise<Socket>;

export type ExpectedIdentity = Identity | string | readonly (Identity | string)[];

export interface OpenOptions {
  /** The source workload's certificate (presented to the server) and key. */
  readonly source: WorkloadCredentials;
  /** Roots the server's chain must lead to; also fixes the trust domain it must be in. */
  readonly trustBundle: TrustBundle;
  /** The HBONE listener, "ip:15008". */
  readonly destination: string;
  /** The identity (or any of the identities) the server must present. */
  readonly expectedIdentity: ExpectedIdentity;
  /** The CONNECT target, "endpointIP:targetPort". */
  readonly authority: string;
  readonly headers?: TunnelHeaders;
  /** Give up if the tunnel is not up by then (connection + response), ms. */
  readonly timeoutMs?: number;
  /**
   * How to make the TCP connection when a new HBONE connection is needed (default: a plain
   * connect from this process's netns). Connections made by different dialers must not be
   * shared: give each its own `sourceAddress`.
   */
  readonly dial?: Dialer;
  /** The source workload's address; part of the pool key (connections are per source pod). */
  readonly sourceAddress?: string;
}

export interface HboneClientOptions {
  readonly windows?: WindowSettings;
  readonly idleTimeoutMs?: number;
  readonly maxStreamsPerConnection?: number;
  readonly connectTimeoutMs?: number;
  readonly openTimeoutMs?: number;
  /** PING every pooled connection this often, ms (default 10 s; 0 turns the periodic PING off). */
  readonly keepaliveIntervalMs?: number;
  /** A connection that does not answer a PING within this long is destroyed, ms (default 3 s). */
  readonly pingTimeoutMs?: number;
  /** A CONNECT without an answer after this long PINGs its connection, ms (default 1 s). */
  readonly openProbeAfterMs?: number;
  readonly logger?: Logger;
}

export const DEFAULT_KEEPALIVE_INTERVAL_MS = 10_000;
export const DEFAULT_PING_TIMEOUT_MS = 3_000;
/** The node proxy's setting for its HBONE client's `pingTimeoutMs` (docs/hbone.md, "Liveness"). */
export const PING_TIMEOUT_ENV = 'NODEMESH_HBONE_PING_TIMEOUT_MS';

/**
 * `pingTimeoutMs` from NODEMESH_HBONE_PING_TIMEOUT_MS (DEFAULT_PING_TIMEOUT_MS where unset). A
 * value that is not a whole number of milliseconds ≥ 1 throws, naming the variable.
 */
export function pingTimeoutFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  return millisFromEnv(env, PING_TIMEOUT_ENV, DEFAULT_PING_TIMEOUT_MS, 1);
}

/** How long a new pooled HBONE connection may take (dial, TLS, the server's SETTINGS) before the CONNECTs waiting for it fail. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** The node proxy's setting for its HBONE client's `connectTimeoutMs`, both engines (docs/hbone.md, "Liveness"). */
export const CONNECT_TIMEOUT_ENV = 'NODEMESH_HBONE_CONNECT_TIMEOUT_MS';

/** `connectTimeoutMs` from NODEMESH_HBONE_CONNECT_TIMEOUT_MS (the default where unset); anything else than a whole number ≥ 1 throws, naming the variable. */
export function connectTimeoutFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  return millisFromEnv(env, CONNECT_TIMEOUT_ENV, DEFAULT_CONNECT_TIMEOUT_MS, 1);
}
export const DEFAULT_OPEN_PROBE_AFTER_MS = 1_000;

interface CredentialState {
  readonly certChain: string;
  readonly key: string | Buffer;
  readonly bundle: TrustBundle;
  readonly context: SecureContext;
  readonly generation: number;
}

const ID_CACHE_LIMIT = 1024;

export class HboneClient {
  private readonly pool: SessionPool;
  private readonly windows: WindowSettings;
  private readonly credentials = new Map<string, CredentialState>();
  private readonly sourceIds = new Map<string, string>();
  private readonly openTimeoutMs: number;
  private readonly openProbeAfterMs: number;
  private generation = 0;

  constructor(private readonly options: HboneClientOptions = {}) {
    this.windows = validateWindows(options.windows ?? DEFAULT_WINDOWS);
    this.openTimeoutMs = options.openTimeoutMs ?? 15_000;
    this.openProbeAfterMs = options.openProbeAfterMs ?? DEFAULT_OPEN_PROBE_AFTER_MS;
    this.pool = new SessionPool({
      idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
      maxStreamsPerConnection: options.maxStreamsPerConnection ?? Number.MAX_SAFE_INTEGER,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      keepaliveIntervalMs: options.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_INTERVAL_MS,
      pingTimeoutMs: options.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS,
    });
  }

  /**
   * Opens a tunnel and resolves with its stream (a Duplex: write to send to the destination
   * workload, end() to half-close) once the server answered 200. Rejects with
   * TunnelRefusedError (carrying the status) on any other answer, and with TunnelConnectError if
   * no verified connection to the destination could be made.
   */
  async open(o: OpenOptions): Promise<ClientHttp2Stream> {
    const t = await this.start(o);
    await t.response;
    return t.stream;
  }

  /**
   * Sends the CONNECT and resolves at once with its stream and the server's answer still to come
   * (`response`, settling as open() does). Bytes written to the stream before the answer travel
   * right behind the CONNECT (no round trip before the first byte, as ztunnel sends them); the
   * server holds them until its policy admitted the tunnel and the destination app is connected,
   * and drops them on a refusal. Read nothing from the stream as success before `response`
   * resolved: a refusal ends it (the caller resets its client then). Rejects (TunnelConnectError)
   * only when no connection or stream could be had.
   */
  async start(o: OpenOptions): Promise<{ stream: ClientHttp2Stream; response: Promise<void> }> {
    const target = targetOf(o.authority);
    const destination = targetOf(o.destination);
    const expected = normalizeExpected(o.expectedIdentity);
    const sourceId = this.sourceIdOf(o.source.certChain);
    const key = `${sourceId}|${o.sourceAddress ?? ''}|${formatAuthority(destination.host, destination.port)}|${expected.key}`;
    const creds = this.credentialsFor(key, o);

    let lease;
    try {
      lease = await this.pool.acquire(key, creds.generation, () => this.connect(destination, creds, expected.ids, o.dial));
    } catch (err) {
      throw new TunnelConnectError(
        `cannot open an HBONE connection from ${sourceId} to ${o.destination} (expecting ${expected.key}): ${err instanceof Error ? err.message : String(err)}`,
        o.destination,
        err,
      );
    }
    let stream: ClientHttp2Stream;
    try {
      stream = lease.session.request(
        {
          [h2.HTTP2_HEADER_METHOD]: h2.HTTP2_METHOD_CONNECT,
          [h2.HTTP2_HEADER_AUTHORITY]: formatAuthority(target.host, target.port),
          ...requestHeaders(o.headers),
        },
        { endStream: false },
      );
    } catch (err) {
      lease.release();
      throw new TunnelConnectError(`cannot start an HBONE stream to ${o.destination}: ${err instanceof Error ? err.message : String(err)}`, o.destination, err);
    }
    stream.once('close', lease.release);
    const response = this.awaitResponse(stream, o, o.timeoutMs ?? this.openTimeoutMs, lease.probe);
    response.catch(() => undefined); // the caller observes it; an unobserved rejection must not crash
    return { stream, response };
  }

  /** Open HTTP/2 connections (all destinations). */
  connectionCount(): number {
    return this.pool.connectionCount();
  }

  poolSnapshot(): ReturnType<SessionPool['snapshot']> {
    return this.pool.snapshot();
  }

  /** Sends GOAWAY on every connection and resolves when their streams have finished. */
  close(): Promise<void> {
    return this.pool.close();
  }

  destroy(): void {
    this.pool.destroy();
  }

  /**
   * Waits for the CONNECT's answer. One timer: after openProbeAfterMs without an answer the
   * connection is PINGed (a dead one is destroyed, failing this stream at once), then the timer
   * runs on to the open timeout.
   */
  private awaitResponse(stream: ClientHttp2Stream, o: OpenOptions, timeoutMs: number, probe: () => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error): void => {
        clearTimeout(timer);
        stream.off('response', onResponse);
        stream.off('error', onError);
        stream.off('close', onClose);
        if (!err) return resolve();
        if (!stream.destroyed) stream.close(h2.NGHTTP2_CANCEL);
        reject(err);
      };
      const onResponse = (headers: Record<string, unknown>): void => {
        const status = Number(headers[h2.HTTP2_HEADER_STATUS]);
        if (status === 200) done();
        else done(new TunnelRefusedError(status, o.destination, o.authority));
      };
      const onError = (err: Error): void =>
        done(new TunnelConnectError(`the HBONE stream to ${o.authority} via ${o.destination} failed: ${err.message}`, o.destination, err));
      const onClose = (): void =>
        done(
          new TunnelConnectError(
            `the HBONE stream to ${o.authority} via ${o.destination} closed before a response (RST code ${stream.rstCode ?? 'none'})`,
            o.destination,
          ),
        );
      const expire = (): void => done(new TunnelConnectError(`no answer to CONNECT ${o.authority} via ${o.destination} within ${timeoutMs} ms`, o.destination));
      const probeAfter = this.openProbeAfterMs;
      let timer =
        probeAfter > 0 && probeAfter < timeoutMs
          ? setTimeout(() => {
              probe();
              timer = setTimeout(expire, timeoutMs - probeAfter);
            }, probeAfter)
          : setTimeout(expire, timeoutMs);
      stream.on('response', onResponse);
      stream.on('error', onError);
      stream.on('close', onClose);
    });
  }

  private async connect(dest: TunnelTarget, creds: CredentialState, expected: readonly Identity[], dial: Dialer | undefined): Promise<ClientHttp2Session> {
    const verify = clientVerification(creds.bundle, expected);
    const log = this.options.logger;
    const socket = dial ? await dial(dest.host, dest.port) : undefined;
    let tls: TLSSocket | undefined;
    const session = h2connect(`https://${formatAuthority(dest.host, dest.port)}`, {
      createConnection: () =>
        (tls = tlsConnect({
          socket,
          host: dest.host,
          port: dest.port,
          secureContext: creds.context,
          ALPNProtocols: [ALPN_H2],
          rejectUnauthorized: verify.rejectUnauthorized,
          checkServerIdentity: verify.checkServerIdentity,
        })),
      settings: { enablePush: false, initialWindowSize: this.windows.streamWindow, maxFrameSize: this.windows.maxFrameSize },
      maxSessionMemory: maxSessionMemoryMiB(this.windows),
    });
    bindTransport(session, [tls, socket]);
    session.once('connect', () => {
      // node:http2 emits 'connect' also for a session destroyed while its TLS handshake ran (the
      // pool gave up on it), and setLocalWindowSize then throws: uncaught, it ended the process.
      if (session.destroyed) return;
      session.setLocalWindowSize(this.windows.connectionWindow);
      log?.debug({ destination: `${dest.host}:${dest.port}` }, 'HBONE connection up');
    });
    session.on('error', (err) => log?.debug({ destination: `${dest.host}:${dest.port}`, err: err.message }, 'HBONE connection error'));
    // The peer's FIN (or TLS close_notify) ends the whole HTTP/2 connection. node:http2 tears a
    // session down only on the socket's 'close', and a dialled socket that allows half-open (the
    // node proxy's in-netns sockets do; TLS inherits it) never closes on a FIN: the session would
    // stay pooled, and every new stream on it would wait for an answer from a dead peer.
    tls?.once('end', () => {
      if (session.destroyed) return;
      log?.debug({ destination: `${dest.host}:${dest.port}` }, 'HBONE peer closed the connection');
      session.destroy();
    });
    return session;
  }

  private sourceIdOf(certChain: string): string {
    let id = this.sourceIds.get(certChain);
    if (id) return id;
    const leafPem = splitPem(certChain)[0];
    if (!leafPem) throw new Error('the source credentials have no certificate: certChain must hold the PEM leaf certificate first');
    id = spiffeIdOf(new X509Certificate(leafPem));
    if (this.sourceIds.size >= ID_CACHE_LIMIT) this.sourceIds.clear();
    this.sourceIds.set(certChain, id);
    return id;
  }

  /** The TLS context for a pool group; a new one (and a new generation) when the credentials changed. */
  private credentialsFor(key: string, o: OpenOptions): CredentialState {
    const cur = this.credentials.get(key);
    // By value: a certificate manager may hand out equal credentials in new objects on every call,
    // and a new generation would retire every pooled connection.
    if (cur && cur.certChain === o.source.certChain && sameKey(cur.key, o.source.key) && (cur.bundle === o.trustBundle || cur.bundle.pem === o.trustBundle.pem))
      return cur;
    const next: CredentialState = {
      certChain: o.source.certChain,
      key: o.source.key,
      bundle: o.trustBundle,
      context: createSecureContext({
        cert: o.source.certChain,
        key: o.source.key,
        ca: o.trustBundle.pem,
        minVersion: TLS_VERSION,
        maxVersion: TLS_VERSION,
      }),
      generation: ++this.generation,
    };
    this.credentials.set(key, next);
    return next;
  }
}

export function sameKey(a: string | Buffer, b: string | Buffer): boolean {
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  return a.equals(b);
}

/** Expected identities given as one SPIFFE ID, parsed once (both engines' clients ask per tunnel). */
const expectedCache = new Map<string, { ids: Identity[]; key: string }>();

export function normalizeExpected(e: ExpectedIdentity): { ids: Identity[]; key: string } {
  if (typeof e === 'string') {
    let r = expectedCache.get(e);
    if (!r) {
      r = { ids: [toIdentity(e)], key: e };
      if (expectedCache.size >= ID_CACHE_LIMIT) expectedCache.clear();
      expectedCache.set(e, r);
    }
    return r;
  }
  const list = Array.isArray(e) ? (e as readonly (Identity | string)[]) : [e as Identity];
  if (list.length === 0) throw new Error('expectedIdentity is empty: name the SPIFFE identity the destination must present');
  const ids = list.map(toIdentity);
  return { ids, key: ids.map(formatSpiffeId).sort().join(',') };
}
