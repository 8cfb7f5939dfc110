// Sockets inside another network namespace, handed to Node as ordinary net objects, and socket
// options Node lacks. The addon creates the socket on a helper thread that enters the netns; the
// event loop thread never leaves its own netns and never blocks (connects complete via uv_poll).
import * as net from 'node:net';
import { binding, call, toNativeError } from './binding';

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
}

export interface ConnectInNetnsOptions {
  host: string;
  port: number;
  localAddress?: string;
  localPort?: number;
  /** IP_TRANSPARENT: allows localAddress to be a foreign address (source spoofing as the client) */
  transparent?: boolean;
  mark?: number;
  /** default 10 s */
  timeoutMs?: number;
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
    }),
  );
}

/** Connects from inside the netns; resolves to a connected net.Socket. */
export async function connectInNetns(netnsPath: string, o: ConnectInNetnsOptions): Promise<net.Socket> {
  let fd: number;
  try {
    fd = await binding().connectInNetns(netnsPath, o.host, o.port, o.localAddress, o.localPort, o.timeoutMs ?? 10_000, {
      transparent: o.transparent,
      mark: o.mark,
    });
  } catch (err) {
    throw toNativeError(err);
  }
  return new net.Socket({ fd, readable: true, writable: true });
}

/** The netns cookie BPF programs see (bpf_get_netns_cookie) for the netns at netnsPath. */
export function netnsCookie(netnsPath: string): bigint {
  return call((b) => b.netnsCookie(netnsPath));
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

/** The cookie of the netns a socket lives in (SO_NETNS_COOKIE), comparable with netnsCookie(). */
export function socketNetnsCookie(fd: number): bigint {
  return call((b) => b.socketNetnsCookie(fd));
}

/** SO_MARK on a socket fd (needs CAP_NET_ADMIN). */
export function setMark(fd: number, mark: number): void {
  call((b) => b.setMark(fd, mark));
}
