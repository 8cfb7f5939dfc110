// Connecting the far end of a tunnel: a TCP connection to the destination workload that keeps
// half-close (allowHalfOpen) so END_STREAM from the tunnel becomes a FIN and not a full close.
import { connect, type Socket } from 'node:net';
import type { TunnelTarget } from './authority';

export interface UpstreamOptions {
  /** Bind to this source address (e.g. to keep the client's address in-pod). */
  readonly localAddress?: string;
  readonly timeoutMs?: number;
}

/** Resolves with the connected socket; rejects with the socket error (code ECONNREFUSED, …). */
export function connectUpstream(target: TunnelTarget, options: UpstreamOptions = {}): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: target.host, port: target.port, localAddress: options.localAddress, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => {
      const err = Object.assign(new Error(`connecting to ${target.host}:${target.port} timed out after ${options.timeoutMs} ms`), { code: 'ETIMEDOUT' });
      socket.destroy(err);
    }, options.timeoutMs ?? 10_000);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
