// A connected TCP socket as a bare file descriptor: what the native HBONE engine takes without a
// net.Socket made first (docs/hbone.md, "Raw sockets"). Making a net.Socket only to hand its fd to
// the engine costs a libuv handle, an epoll registration, a dup(2) and a close(2) per socket; a
// socket that comes from the addon (connectInNetns, accept) can go to the engine as it is.
// Handing one over passes its ownership: the receiver closes it. It is an object, not a number, so
// that callers can key their books on it (as they do on a net.Socket).
import { Stream } from 'node:stream';

export interface RawSocket {
  /** A connected (connect(2) finished) TCP socket; blocking or not, the engine sets O_NONBLOCK. */
  readonly fd: number;
  /** Bytes already read from it that must go first (none for a socket fresh from connect or accept). */
  readonly prefix?: Buffer;
}

export function rawSocket(fd: number, prefix?: Buffer): RawSocket {
  if (!Number.isInteger(fd) || fd < 0) throw new Error(`not a file descriptor: ${fd}`);
  return prefix?.length ? { fd, prefix } : { fd };
}

/** A RawSocket, not a stream (a net.Socket has no `fd` of its own, but a Duplex could carry one). */
export function isRawSocket(x: unknown): x is RawSocket {
  return typeof x === 'object' && x !== null && !(x instanceof Stream) && typeof (x as { fd?: unknown }).fd === 'number';
}
