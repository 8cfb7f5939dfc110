// Sockets inside another network namespace, handed to Node as ordinary net objects, and socket
// options Node lacks. The addon creates the socket on a long-lived worker thread of that netns
// (usually ready-made, from the worker's small pool); the event loop thread never leaves its own
// netns and never blocks (connects complete via uv_poll).
import * as net from 'node:net';
import { binding, call, type MallocStats, toNativeError } from './binding';
import { readNetnsCookie, readNetnsCookieOfFd, type NetnsCookieMethod } from './netns-cookie';

export interface ListenInNetnsOptions {
  host: string;
  port: number;
  backlog?: number;
  /** IP_TRANSPARENT: accept connections for addresses not configured locally */
  transparent?: boolean;
  /** IP_FREEBIND: bind an address not (yet) configured */
  freebind?: boolean;
  /** SO_MARK */
  mark?: number;
  reusePort?: boolean;
  /** TCP_NODELAY, which every accepted socket inherits (no setsockopt per connection) */
  noDelay?: boolean;
}

export interface ConnectInNetnsOptions {
  host: string;
  port: number;
  localAddress?: string;
  localPort?: number;
  /** IP_TRANSPARENT: allows localAddress to be a foreign address (source spoofing as the client) */
  transparent?: boolean;
  mark?: number;
  /** TCP_NODELAY, set before the connect */
  noDelay?: boolean;
  /** default 10 s */
  timeoutMs?: number;
  /** net.Socket's allowHalfOpen: keep the writable side open after the peer's FIN (default false) */
  allowHalfOpen?: boolean;
}

export interface NetnsWorkerConfig {
  /** a netns's worker leaves after this long without requests (default 5000 ms) */
  idleMs: number;
  /** ready sockets a worker keeps per address family once connects were made (default 8; 0: none) */
  poolSize: number;
  /** connects that may wait for one worker's socket at a time (default 1024); more fail with EAGAIN */
  maxQueue: number;
}

export interface NetnsWorker {
  /** the path the worker was started for */
  path: string;
  /** the netns's inode (what `ls -iL <path>` and /proc/<pid>/ns/net show) */
  inode: number;
  /** ready sockets in its pool */
  pooled: number;
  /** requests waiting for it */
  queued: number;
  /** sockets it created since it started */
  sockets: number;
}

/**
 * Opens a listening TCP socket inside the netns and returns its fd, for
 * `net.createServer(...).listen({ fd })`. The server owns the fd from then on.
 */
export function listenInNetns(netnsPath: string, o: ListenInNetnsOptions): number {
  return call((b) =>
    b.listenInNetns(netnsPath, o.host, o.port, o.backlog ?? 511, {
      transparent: o.transparent,
      freebind: o.freebind,
      mark: o.mark,
      reusePort: o.reusePort,
      noDelay: o.noDelay,
    }),
  );
}

/** Connects from inside the netns; resolves to a connected net.Socket. */
export async function connectInNetns(netnsPath: string, o: ConnectInNetnsOptions): Promise<net.Socket> {
  const fd = await connectFdInNetns(netnsPath, o);
  return new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: o.allowHalfOpen === true });
}

/**
 * Connects from inside the netns; resolves to the connected socket's bare fd, which the caller owns
 * (for the native HBONE engine, which takes an fd without a net.Socket: common/hbone/raw-socket.ts).
 */
export async function connectFdInNetns(netnsPath: string, o: ConnectInNetnsOptions): Promise<number> {
  try {
    return await binding().connectInNetns(netnsPath, o.host, o.port, o.localAddress, o.localPort, o.timeoutMs ?? 10_000, {
      transparent: o.transparent,
      mark: o.mark,
      noDelay: o.noDelay,
    });
  } catch (err) {
    throw toNativeError(err);
  }
}

/**
 * Stops the worker thread of the netns at netnsPath (matched by inode, or by the path it was started
 * with when the path is gone) and closes its pooled sockets, so this process no longer holds the
 * netns. Call it when a workload leaves; a worker also leaves by itself after `idleMs`. Connects
 * still waiting for that worker fail with ECANCELED. Returns how many workers stopped.
 */
export function releaseNetns(netnsPath: string): number {
  return call((b) => b.releaseNetns(netnsPath));
}

/** Stops every netns worker (shutdown, tests). Returns how many stopped. */
export function closeNetnsWorkers(): number {
  return call((b) => b.closeNetnsWorkers());
}

/** Changes (some of) the worker settings for this process; returns the settings now in force. */
export function configureNetnsWorkers(c: Partial<NetnsWorkerConfig> = {}): NetnsWorkerConfig {
  return call((b) => b.configureNetnsWorkers(c));
}

/** The netns workers running now. */
export function netnsWorkers(): NetnsWorker[] {
  return call((b) => b.netnsWorkers());
}

/**
 * The netns cookie BPF programs see (bpf_get_netns_cookie) for the netns at netnsPath.
 * SO_NETNS_COOKIE where the kernel has it (5.14), else a BPF probe (5.7+): see netns-cookie.ts.
 */
export function netnsCookie(netnsPath: string, method: NetnsCookieMethod = 'auto'): bigint {
  return readNetnsCookie(netnsPath, method);
}

/** The fd under a connected socket or a listening server (Node does not expose it publicly). */
export function fdOf(s: net.Socket | net.Server): number {
  // Node keeps the libuv handle (with its fd) in the undocumented _handle field.
  const handle = (s as unknown as { _handle?: { fd?: number } })._handle;
  if (!handle || typeof handle.fd !== 'number' || handle.fd < 0) throw new Error('the socket has no fd (not open, or not a TCP socket)');
  return handle.fd;
}

/** SO_COOKIE of a socket fd: the cookie BPF programs see (bpf_get_socket_cookie). */
export function socketCookie(fd: number): bigint {
  return call((b) => b.socketCookie(fd));
}

/**
 * The cookie of the netns a socket lives in, comparable with netnsCookie(): SO_NETNS_COOKIE, or
 * before Linux 5.14 the netns of the socket (SIOCGSKNS) through the BPF probe.
 */
export function socketNetnsCookie(fd: number, method: NetnsCookieMethod = 'auto'): bigint {
  if (method !== 'bpf') {
    try {
      return call((b) => b.socketNetnsCookie(fd));
    } catch (err) {
      if (!(method === 'auto' && err instanceof Error && (err as { code?: string }).code === 'ENOPROTOOPT')) throw err;
    }
  }
  const nsfd = call((b) => b.socketNetnsFd(fd));
  try {
    return readNetnsCookieOfFd(nsfd);
  } finally {
    call((b) => b.closeFd(nsfd));
  }
}

/**
 * Reserves `bytes` of kernel send buffer for a socket fd: SO_SNDBUFFORCE (CAP_NET_ADMIN), else
 * SO_SNDBUF, which the kernel caps at net.core.wmem_max. Returns what the kernel granted (twice
 * the request: it counts its own bookkeeping in), so a caller can tell a capped grant.
 */
export function setSendBuffer(fd: number, bytes: number): number {
  return call((b) => b.setSendBuffer(fd, bytes));
}

/** SO_MARK on a socket fd (needs CAP_NET_ADMIN). */
export function setMark(fd: number, mark: number): void {
  call((b) => b.setMark(fd, mark));
}

/**
 * Gives memory back to the system: V8's low-memory collections (compacting, the young generation
 * shrunk), then the C heap's free pages (glibc malloc_trim(0), every thread's arena). Blocks for
 * the collections (tens of ms for a node proxy's heap). True when malloc_trim gave some back.
 */
export function reduceMemory(): boolean {
  return call((b) => b.reduceMemory());
}

/**
 * Fixes glibc's mmap and trim thresholds at `bytes` (mallopt), so that they no longer grow with
 * the largest block freed: buffers of at least `bytes` are mmapped and unmapped again, and each
 * thread arena gives back its free top above `bytes` — which malloc_trim (reduceMemory) never
 * does for a thread's arena. The node proxy holds them at 128 KiB from start-up
 * (docs/node-proxy.md, "Memory"). False when glibc refused (or the C library is not glibc).
 */
export function holdMallocThresholds(bytes: number): boolean {
  return call((b) => b.holdMallocThresholds(bytes));
}

/** The C heap over every arena (glibc mallinfo2); undefined without glibc ≥ 2.33. */
export function mallocStats(): MallocStats | undefined {
  return call((b) => b.mallocStats());
}
