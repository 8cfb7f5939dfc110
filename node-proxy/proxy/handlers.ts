// What the capture listeners hand to connection handling: the workload whose listener accepted a
// connection, the handler interface, and the addresses of an accepted socket. The handling itself
// is in this folder: outbound.ts, inbound.ts, passthrough.ts over plan.ts and tracker.ts.
import { Socket } from 'node:net';
import type { AcceptedConnection } from '../../native/netns-accept';
import type { Endpoint } from '../connections/table';

export interface CapturedWorkload {
  readonly key: string;
  readonly netnsPath: string;
  readonly netnsCookie: bigint;
}

/** What the enroller calls for each accepted connection on a workload's 15001 / 15006 listeners. */
export interface CaptureHandlers {
  /** 15001: accepted by the addon, with its original destination (native/netns-accept.ts). */
  outbound(wl: CapturedWorkload, connection: AcceptedConnection): void;
  inbound(wl: CapturedWorkload, socket: Socket): void;
}

export function unmap(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export function peer(s: Socket): Endpoint {
  return { address: unmap(s.remoteAddress ?? ''), port: s.remotePort ?? 0 };
}

export function local(s: Socket): Endpoint {
  return { address: unmap(s.localAddress ?? ''), port: s.localPort ?? 0 };
}

/**
 * The net.Socket for an accepted connection's fd, for the paths that move bytes in JavaScript (the
 * native HBONE engine and the kernel splice take the bare fd instead): half-open, as the capture
 * listeners' sockets were; no Nagle (TCP_NODELAY, inherited from the capture listener).
 */
export function socketOf(c: AcceptedConnection): Socket {
  return new Socket({ fd: c.fd, readable: true, writable: true, allowHalfOpen: true });
}
