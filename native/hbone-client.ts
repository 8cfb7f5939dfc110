// The HBONE client on the native engine (native/hbone.ts): the same pool key, identity checks,
// headers and errors as common/hbone/client.ts, but a tunnel is a captured socket handed to the
// engine with its CONNECT, not a Duplex in the event loop. TypeScript keeps the pool (which
// connection a tunnel goes on), the identity check of each new connection (the peer's DER chain,
// verified by common/identity/verify.ts as the node:tls client does), rotation and idle closing.
import { connect as netConnect } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { formatAuthority, targetOf } from '../common/hbone/authority';
import { DEFAULT_PING_TIMEOUT_MS, normalizeExpected, sameKey, type Dialer, type OpenOptions } from '../common/hbone/client';
import { TunnelConnectError } from '../common/hbone/errors';
import { isRawSocket } from '../common/hbone/raw-socket';
import { requestHeaders } from '../common/hbone/headers';
import { DEFAULT_WINDOWS, validateWindows, type WindowSettings } from '../common/hbone/settings';
import { splitPem } from '../common/identity/pem';
import type { Identity } from '../common/identity/spiffe';
import { spiffeIdOf, verifyPeerChain } from '../common/identity/verify';
import type { Logger } from '../common/log';
import {
  type EngineSocket,
  hboneConnectionsPerKey,
  NativeConnection,
  NativeTlsContext,
  nativeHboneThreadCount,
  type NativeStream,
  type NativeStreamResult,
} from './hbone';

export interface NativeHboneClientOptions {
  readonly windows?: WindowSettings;
  readonly idleTimeoutMs?: number;
  readonly maxStreamsPerConnection?: number;
  /**
   * Connections per pool key that streams are spread over (default: one per engine thread). A
   * connection's streams share its engine thread (one TLS session is encrypted in order), so
   * several streams to one peer scale with cores only over several connections: a new stream
   * dials another while every open one carries a stream and there are fewer than this.
   * Default: NODEMESH_HBONE_CONNECTIONS, or one per engine thread when it is unset or 0.
   */
  readonly connectionsPerKey?: number;
  readonly connectTimeoutMs?: number;
  readonly keepaliveIntervalMs?: number;
  readonly pingTimeoutMs?: number;
  readonly logger?: Logger;
}

/** What the caller hears of one tunnel: a refusal, then its end (once). */
export interface NativeTunnelEvents {
  /**
   * A refusal: the CONNECT's answer other than 200 (the local socket has already been reset). A 200
   * is not reported (the end's `status` says it): the engine wakes JavaScript once fewer per tunnel.
   */
  readonly response?: (status: number) => void;
  readonly end: (r: NativeStreamResult) => void;
}

interface Pooled {
  conn?: NativeConnection;
  readonly ready: Promise<void>;
  readonly generation: number;
  streams: number;
  usable: boolean;
  /** When its last stream ended (ms, Date.now()); the idle timer is armed once, not per stream. */
  idleSince: number;
  idle?: NodeJS.Timeout;
}

interface Credentials {
  readonly certChain: string;
  readonly key: string | Buffer;
  readonly bundlePem: string;
  readonly context: NativeTlsContext;
  readonly generation: number;
}

/**
 * OpenOptions with a dialer that may resolve to a raw fd (a socket the addon connected in the
 * source pod's netns), handed to the engine without a net.Socket.
 */
export type NativeOpenOptions = Omit<OpenOptions, 'dial'> & { readonly dial?: (host: string, port: number) => Promise<EngineSocket> };

const MAX_STREAMS = 100; // the servers' SETTINGS_MAX_CONCURRENT_STREAMS (common/hbone/settings.ts)

export class NativeHboneClient {
  private readonly windows: WindowSettings;
  private readonly pool = new Map<string, Pooled[]>();
  private readonly credentials = new Map<string, Credentials>();
  private readonly sourceIds = new Map<string, string>();
  /** Authorities as given → "ip:port" as parsed (each tunnel's are parsed once, not per tunnel). */
  private readonly authorities = new Map<string, string>();
  private generation = 0;
  private readonly spread: number;

  constructor(private readonly options: NativeHboneClientOptions = {}) {
    this.windows = validateWindows(options.windows ?? DEFAULT_WINDOWS);
    this.spread = options.connectionsPerKey ?? (hboneConnectionsPerKey() || nativeHboneThreadCount());
    if (!(Number.isInteger(this.spread) && this.spread >= 1)) throw new Error(`connectionsPerKey ${this.spread}: a whole number ≥ 1`);
  }

  /**
   * Opens a tunnel for `local` (a connected socket, taken over: destroyed in Node, its bytes moved
   * by the engine from now on; or a raw fd, owned by the engine once the tunnel is opened). Resolves once the CONNECT is on its way (the local socket's bytes
   * follow it at once, as HboneClient.start does); rejects with TunnelConnectError when no verified
   * connection could be had (the local socket is then untouched).
   */
  async tunnel(o: NativeOpenOptions, local: EngineSocket, events: NativeTunnelEvents): Promise<NativeStream> {
    const authority = this.canonical(o.authority);
    const destination = this.canonical(o.destination);
    const expected = normalizeExpected(o.expectedIdentity);
    const sourceId = this.sourceIdOf(o.source.certChain);
    const key = `${sourceId}|${o.sourceAddress ?? ''}|${destination}|${expected.key}`;
    const creds = this.credentialsFor(key, o);
    let p: Pooled;
    try {
      p = await this.acquire(key, creds, o, expected.ids);
    } catch (err) {
      throw new TunnelConnectError(
        `cannot open an HBONE connection from ${sourceId} to ${o.destination} (expecting ${expected.key}): ${err instanceof Error ? err.message : String(err)}`,
        o.destination,
        err,
      );
    }
    if (!isRawSocket(local) && local.destroyed) {
      this.release(key, p);
      throw new TunnelConnectError('the client closed its connection before the tunnel was opened', o.destination);
    }
    const headers = requestHeaders(o.headers);
    return p.conn!.open(
      local,
      authority,
      headers,
      (status) => events.response?.(status),
      (r) => {
        this.release(key, p);
        events.end(r);
      },
    );
  }

  /** Open connections (all destinations). */
  connectionCount(): number {
    let n = 0;
    for (const list of this.pool.values()) n += list.filter((p) => p.conn).length;
    return n;
  }

  /** GOAWAY to every connection; streams still open after `graceMs` are reset. */
  close(graceMs = 5_000): void {
    for (const list of this.pool.values())
      for (const p of list) {
        p.usable = false;
        if (p.idle) clearTimeout(p.idle);
        p.conn?.close(graceMs);
      }
    this.pool.clear();
    for (const c of this.credentials.values()) c.context.free();
    this.credentials.clear();
  }

  private async acquire(key: string, creds: Credentials, o: NativeOpenOptions, expected: readonly Identity[]): Promise<Pooled> {
    const cap = Math.min(MAX_STREAMS, this.options.maxStreamsPerConnection ?? MAX_STREAMS);
    let list = this.pool.get(key);
    if (!list) this.pool.set(key, (list = []));
    // retire connections made with older credentials: no new streams, closed when idle
    for (const p of list) if (p.generation < creds.generation) p.usable = false;
    // the usable connection with the fewest streams; another one while each carries a stream
    let p: Pooled | undefined;
    let usable = 0;
    for (const x of list) {
      if (!x.usable) continue;
      usable++;
      if (x.streams < cap && (!p || x.streams < p.streams)) p = x;
    }
    if (!p || (p.streams > 0 && usable < this.spread)) {
      p = this.dial(key, creds, o, expected);
      list.push(p);
    }
    p.streams++;
    try {
      await p.ready;
    } catch (err) {
      p.streams--;
      throw err;
    }
    return p;
  }

  private dial(key: string, creds: Credentials, o: NativeOpenOptions, expected: readonly Identity[]): Pooled {
    const p: Pooled = { generation: creds.generation, streams: 0, usable: true, idleSince: 0, ready: Promise.resolve() };
    const timeoutMs = this.options.connectTimeoutMs ?? 10_000;
    const ready = (async (): Promise<void> => {
      const socket = await (o.dial ?? plainDial)(targetOf(o.destination).host, targetOf(o.destination).port);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          conn.destroy(`connect timeout (${timeoutMs} ms)`);
          reject(new Error(`the TLS handshake did not finish within ${timeoutMs} ms`));
        }, timeoutMs);
        const conn: NativeConnection = new NativeConnection(
          socket,
          creds.context,
          false,
          {
            streamWindow: this.windows.streamWindow,
            connectionWindow: this.windows.connectionWindow,
            maxFrameSize: this.windows.maxFrameSize,
            keepaliveIntervalMs: this.options.keepaliveIntervalMs ?? 10_000,
            pingTimeoutMs: this.options.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS,
          },
          {
            ready: (chain) => {
              clearTimeout(timer);
              try {
                verifyPeerChain(chain, o.trustBundle, { expected, role: 'server' });
              } catch (err) {
                conn.destroy(`the server's identity was refused: ${(err as Error).message}`);
                reject(err);
                return;
              }
              p.conn = conn;
              resolve();
            },
            closed: (reason) => {
              clearTimeout(timer);
              p.usable = false;
              p.conn = undefined;
              this.forget(key, p);
              reject(new Error(reason || 'the HBONE connection closed during its handshake'));
              this.options.logger?.debug({ destination: o.destination, reason }, 'native HBONE connection closed');
            },
            goaway: () => {
              p.usable = false;
            },
          },
        );
      });
    })();
    ready.catch(() => {
      p.usable = false;
      this.forget(key, p);
    });
    (p as { ready: Promise<void> }).ready = ready;
    return p;
  }

  private release(key: string, p: Pooled): void {
    p.streams--;
    if (p.streams > 0 || !p.conn) return;
    if (!p.usable) {
      p.conn.close(0);
      return;
    }
    p.idleSince = Date.now();
    if (!p.idle) this.armIdle(p, this.options.idleTimeoutMs ?? 60_000);
  }

  /**
   * Closes `p` once it has carried no stream for the idle timeout. One timer per idle period, not
   * one set and cleared per stream: when it fires on a connection that was busy meanwhile it waits
   * out the rest from the last stream's end (or leaves it to the next release while busy).
   */
  private armIdle(p: Pooled, ms: number): void {
    p.idle = setTimeout(() => {
      p.idle = undefined;
      if (p.streams > 0) return;
      const left = p.idleSince + (this.options.idleTimeoutMs ?? 60_000) - Date.now();
      if (left > 0) return this.armIdle(p, left);
      p.usable = false;
      p.conn?.close(0);
    }, ms);
    p.idle.unref();
  }

  /** "ip:port" of an authority (throws on a malformed one), parsed once per distinct text. */
  private canonical(authority: string): string {
    let c = this.authorities.get(authority);
    if (c === undefined) {
      const t = targetOf(authority);
      c = formatAuthority(t.host, t.port);
      if (this.authorities.size >= 1024) this.authorities.clear();
      this.authorities.set(authority, c);
    }
    return c;
  }

  private forget(key: string, p: Pooled): void {
    const list = this.pool.get(key);
    if (!list) return;
    const i = list.indexOf(p);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.pool.delete(key);
  }

  private sourceIdOf(certChain: string): string {
    let id = this.sourceIds.get(certChain);
    if (id) return id;
    const leafPem = splitPem(certChain)[0];
    if (!leafPem) throw new Error('the source credentials have no certificate: certChain must hold the PEM leaf certificate first');
    id = spiffeIdOf(new X509Certificate(leafPem));
    if (this.sourceIds.size >= 1024) this.sourceIds.clear();
    this.sourceIds.set(certChain, id);
    return id;
  }

  private credentialsFor(key: string, o: NativeOpenOptions): Credentials {
    const cur = this.credentials.get(key);
    if (cur && cur.certChain === o.source.certChain && sameKey(cur.key, o.source.key) && cur.bundlePem === o.trustBundle.pem) return cur;
    cur?.context.free();
    const next: Credentials = {
      certChain: o.source.certChain,
      key: o.source.key,
      bundlePem: o.trustBundle.pem,
      context: new NativeTlsContext(o.source.certChain, o.source.key, o.trustBundle.pem, false),
      generation: ++this.generation,
    };
    this.credentials.set(key, next);
    return next;
  }
}

const plainDial: Dialer = (host, port) =>
  new Promise((resolve, reject) => {
    const s = netConnect({ host, port, noDelay: true });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
