// What the capture listeners hand to connection handling: the workload whose listener accepted a
// connection, the handler interface, and the addresses of an accepted socket. The handling itself
// is in this folder: outbound.ts, inbound.ts, passthrough.ts over plan.ts and tracker.ts.
import type { Socket } from 'node:net';
import type { Endpoint } from '../connections/table';

export interface CapturedWorkload {
  readonly key: string;
  readonly netnsPath: string;
  readonly netnsCookie: bigint;
}

/** What the enroller calls for each accepted connection on a workload's 15001 / 15006 listeners. */
export interface CaptureHandlers {
  outbound(wl: CapturedWorkload, socket: Socket): void;
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
