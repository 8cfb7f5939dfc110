// The native HBONE engine (native/src/hbone_engine.cc): an HBONE connection's TLS and HTTP/2 and
// the bytes of its CONNECT streams run on the addon's own threads. This file is the thin typed
// layer over it: TLS contexts, connections (a TCP socket handed over), streams (a local socket
// handed over), and the engine's events routed to their owners — once per connection or stream
// event, never per chunk. The pooling client and the server built on it are native/hbone-client.ts
// and native/hbone-server.ts; docs/hbone.md ("The native engine") says what runs where.
import type { Socket } from 'node:net';
import { isRawSocket, type RawSocket } from '../common/hbone/raw-socket';
import { binding, call, type HboneDispatch } from './binding';
import { datapathSliceUs } from './slice';
import { takeOver } from './splice';

/** A socket for the engine: a net.Socket (taken over: destroyed in Node) or a raw fd (taken as it is). */
export type EngineSocket = Socket | RawSocket;

function handOver(s: EngineSocket): { fd: number; prefix: Buffer | undefined } {
  return isRawSocket(s) ? { fd: s.fd, prefix: s.prefix?.length ? s.prefix : undefined } : takeOver(s);
}

/** Engine event kinds (hbone_engine.cc EventKind). */
const CONN_READY = 1;
const CONN_CLOSED = 2;
const CONN_GOAWAY = 3;
const STREAM_REQUEST = 4;
const STREAM_RESPONSE = 5;
const STREAM_END = 6;

export interface NativeConnectionOptions {
  readonly streamWindow?: number;
  readonly connectionWindow?: number;
  readonly maxFrameSize?: number;
  /** Server: SETTINGS_MAX_CONCURRENT_STREAMS (nghttp2 refuses streams beyond it). */
  readonly maxConcurrentStreams?: number;
  readonly handshakeTimeoutMs?: number;
  /** Server: GOAWAY after this long without an open stream (0: never). */
  readonly idleTimeoutMs?: number;
  /** PING the peer this often (0: never). */
  readonly keepaliveIntervalMs?: number;
  /** A PING unanswered this long, with nothing else read meanwhile, closes the connection. */
  readonly pingTimeoutMs?: number;
}

/** How a stream ended: byte counts each way, whether both directions ended cleanly. */
export interface NativeStreamResult {
  /** Bytes read from the local socket and sent to the peer. */
  readonly bytesOut: number;
  /** Bytes received from the peer and written to the local socket. */
  readonly bytesIn: number;
  readonly clean: boolean;
  /** The response status (client), or the answer given (server); 0 when none. */
  readonly status: number;
  /** Why it ended abnormally ('' when clean): 'ECONNRESET', 'reset by the peer (…)', 'refused', … */
  readonly reason: string;
  readonly durationMs: number;
}

export interface ConnectionEvents {
  /** Handshake done; the peer's chain (DER, leaf first) for the caller to verify. */
  ready(chain: Buffer[]): void;
  closed(reason: string): void;
  goaway?(): void;
  /** Server: a CONNECT (or other method) request; answer with answer(). */
  request?(token: number, method: string, authority: string, headers: Record<string, string>): void;
}

interface StreamEvents {
  started: number;
  response?: (status: number) => void;
  end: (r: NativeStreamResult) => void;
}

const connections = new Map<number, ConnectionEvents>();
const streams = new Map<number, StreamEvents>();
let initialised = false;

const dispatch: HboneDispatch = (kind, id, token, status, a, b, clean, s1, s2, list) => {
  switch (kind) {
    case CONN_READY:
      connections.get(id)?.ready(list as Buffer[]);
      return;
    case CONN_CLOSED: {
      const c = connections.get(id);
      connections.delete(id);
      c?.closed(s1);
      return;
    }
    case CONN_GOAWAY:
      connections.get(id)?.goaway?.();
      return;
    case STREAM_REQUEST: {
      const headers: Record<string, string> = {};
      for (let i = 0; i + 1 < list.length; i += 2) {
        const name = list[i] as string;
        headers[name] = headers[name] === undefined ? (list[i + 1] as string) : `${headers[name]}, ${list[i + 1] as string}`;
      }
      const c = connections.get(id);
      if (c?.request) c.request(token, s1, s2, headers);
      else call((x) => x.hboneAnswer(token, 500));
      return;
    }
    case STREAM_RESPONSE:
      streams.get(token)?.response?.(status);
      return;
    case STREAM_END: {
      const s = streams.get(token);
      if (!s) return;
      streams.delete(token);
      s.end({ bytesOut: a, bytesIn: b, clean, status, reason: s1, durationMs: performance.now() - s.started });
      return;
    }
  }
};

/** Whether the addon has the HBONE engine (an addon built before it does not). */
export function nativeHboneAvailable(): boolean {
  return nativeHboneUnavailable() === undefined;
}

/**
 * Why the native engine cannot run in this process (undefined when it can): the addon is not
 * built, was built without the engine, or its threads do not start. Starts the threads when it can
 * (initNativeHbone), so a node proxy learns at start-up, not at its first tunnel.
 */
export function nativeHboneUnavailable(): string | undefined {
  try {
    if (typeof binding().hboneInit !== 'function')
      return 'the native addon was built without the HBONE engine (libnghttp2-dev was missing when it was compiled)';
    initNativeHbone();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** A count from the environment variable `name`: unset or empty is 0; anything but a whole number 0–64 is refused, naming it. */
function countFromEnv(name: string, value: string | undefined, what: string, zero: string): number {
  const v = (value ?? '').trim();
  if (v === '') return 0;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 64) throw new Error(`${name}=${value} is not a ${what}: use a whole number 1–64, or 0 (or unset) for ${zero}`);
  return n;
}

/** NODEMESH_HBONE_THREADS: unset or 0 is the default; anything but a whole number 0–64 is refused, naming the variable. */
export function hboneThreads(value: string | undefined = process.env.NODEMESH_HBONE_THREADS): number {
  return countFromEnv('NODEMESH_HBONE_THREADS', value, 'thread count', 'one per core, at most 4');
}

/**
 * NODEMESH_HBONE_CONNECTIONS: HBONE connections per destination (pool key) that the native client
 * spreads streams over; unset or 0: one per engine thread.
 */
export function hboneConnectionsPerKey(value: string | undefined = process.env.NODEMESH_HBONE_CONNECTIONS): number {
  return countFromEnv('NODEMESH_HBONE_CONNECTIONS', value, 'connection count', 'one per engine thread');
}

/**
 * Starts the engine's threads (once; later calls change nothing). 0: one per core, at most 4.
 * `sliceUs`: the CPU slice each thread asks the kernel for (native/slice.ts).
 */
export function initNativeHbone(threads = hboneThreads(), sliceUs = datapathSliceUs()): void {
  if (initialised) return;
  call((b) => b.hboneInit(dispatch, Math.max(threads, 0), sliceUs));
  initialised = true;
}

/** The engine's threads (starts them when not yet started). */
export function nativeHboneThreadCount(): number {
  initNativeHbone();
  const b = binding();
  // an addon from before hboneThreadCount (bench/hbone-native.ts loads older builds): one connection, as it had
  return typeof b.hboneThreadCount === 'function' ? call((x) => x.hboneThreadCount()) : 1;
}

/** A TLS 1.3 context with one workload's certificate and the mesh roots (ALPN h2, peer certificate required). */
export class NativeTlsContext {
  readonly id: number;
  private freed = false;

  constructor(certChain: string, key: string | Buffer, rootsPem: string, server: boolean) {
    initNativeHbone();
    this.id = call((b) => b.hboneContext(certChain, typeof key === 'string' ? key : key.toString('utf8'), rootsPem, server));
  }

  /** Connections made with it keep it alive as long as they need it. */
  free(): void {
    if (this.freed) return;
    this.freed = true;
    call((b) => b.hboneContextFree(this.id));
  }
}

/** A live stream: its byte counts so far, and a reset for a policy that no longer allows it. */
export interface NativeStream {
  readonly token: number;
  bytes(): { out: number; in: number } | undefined;
  /** Resets both sides (RST_STREAM to the peer, TCP RST to the local socket). */
  reset(): void;
}

function streamHandle(token: number): NativeStream {
  return {
    token,
    bytes: () => {
      const r = call((b) => b.hboneBytes(token));
      return r ? { out: r[0], in: r[1] } : undefined;
    },
    reset: () => void call((b) => b.hboneReset(token)),
  };
}

/** One HBONE connection run by the engine. */
export class NativeConnection {
  readonly id: number;

  /**
   * Hands `socket` (a connected TCP socket, or its raw fd) to the engine, which runs the TLS
   * handshake (as client or server) and HTTP/2 on it; `events` hears of it from then on. A
   * net.Socket is destroyed in Node; the engine owns the fd (closes it) either way.
   */
  constructor(socket: EngineSocket, context: NativeTlsContext, server: boolean, options: NativeConnectionOptions, events: ConnectionEvents) {
    initNativeHbone();
    const { fd, prefix } = handOver(socket);
    if (prefix?.length) {
      // a TLS peer does not speak before the handshake it has not begun; bytes here are garbage
      call((b) => b.closeFd(fd));
      throw new Error('the HBONE connection had bytes read before its handshake');
    }
    this.id = call((b) => b.hboneConnection(fd, context.id, server, options));
    connections.set(this.id, events);
  }

  /**
   * Client: opens a CONNECT stream to `authority` carrying `local`'s bytes (a net.Socket taken
   * over, or a raw fd; bytes already read from it go first). Data flows at once, behind the CONNECT; a non-200 answer resets
   * `local` and is told to `response` (a 200 is not: `end` has the status). `end` is called once,
   * when both directions are done or either failed.
   */
  open(
    local: EngineSocket,
    authority: string,
    headers: Record<string, string>,
    response: (status: number) => void,
    end: (r: NativeStreamResult) => void,
  ): NativeStream {
    const { fd, prefix } = handOver(local);
    const flat: string[] = [];
    for (const [k, v] of Object.entries(headers)) flat.push(k, v);
    let token: number;
    try {
      token = call((b) => b.hboneOpen(this.id, fd, authority, flat, prefix));
    } catch (err) {
      end({ bytesOut: 0, bytesIn: 0, clean: false, status: 0, reason: err instanceof Error ? err.message : String(err), durationMs: 0 });
      return { token: 0, bytes: () => undefined, reset: () => undefined };
    }
    streams.set(token, { started: performance.now(), response, end });
    return streamHandle(token);
  }

  /**
   * Server: answers a request. 200 with `upstream` (a connected socket taken over, or a raw fd) splices the
   * stream to it; any other status refuses it (END_STREAM, the early bytes dropped). `end` hears
   * how an allowed stream ended. False when the stream had already gone (`upstream` is reset then).
   */
  static answer(token: number, status: number, upstream?: EngineSocket, end?: (r: NativeStreamResult) => void): NativeStream | undefined {
    if (status !== 200 || !upstream) {
      call((b) => b.hboneAnswer(token, status));
      return undefined;
    }
    const { fd, prefix } = handOver(upstream);
    if (end) streams.set(token, { started: performance.now(), end });
    const ok = call((b) => b.hboneAnswer(token, 200, fd, prefix));
    if (!ok) {
      streams.delete(token);
      end?.({ bytesOut: 0, bytesIn: 0, clean: false, status: 200, reason: 'the stream was cancelled before it was opened', durationMs: 0 });
      return undefined;
    }
    return streamHandle(token);
  }

  /** Server: how an unanswered stream ended (the client cancelled it). */
  static watch(token: number, end: (r: NativeStreamResult) => void): void {
    streams.set(token, { started: performance.now(), end });
  }

  /** Server: stop watching an unanswered stream (it is about to be answered). */
  static unwatch(token: number): void {
    streams.delete(token);
  }

  /** GOAWAY now; streams still open after `graceMs` are reset with the connection. */
  close(graceMs = 0): void {
    call((b) => b.hboneClose(this.id, graceMs));
  }

  /** Closes at once; `refuseIdentity` sends GOAWAY INADEQUATE_SECURITY first. */
  destroy(reason = 'destroyed', refuseIdentity = false): void {
    call((b) => b.hboneDestroy(this.id, (refuseIdentity ? '!' : '') + reason));
  }
}

/** Connections and streams the engine holds now (tests: nothing is left after close). */
export function nativeHboneActive(): { connections: number; streams: number } {
  const [c, s] = call((b) => b.hboneActive());
  return { connections: c, streams: s };
}
