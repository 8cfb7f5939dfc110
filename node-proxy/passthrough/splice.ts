// Copies bytes both ways between a captured (downstream) socket and its upstream socket.
// stream.pipe gives backpressure (a slow reader pauses the fast writer) without per-chunk work of
// our own; a FIN from one side becomes a FIN to the other (half-close) while the reverse direction
// keeps flowing, so both sockets must be created with allowHalfOpen. An error on either side
// resets the other, so a client never mistakes a broken upstream for a clean end of stream.
import type { Socket } from 'node:net';

export interface SpliceResult {
  /** The first error seen on either socket, if any. */
  error?: Error;
}

export function splice(downstream: Socket, upstream: Socket, onDone: (result: SpliceResult) => void): void {
  let firstError: Error | undefined;
  let closed = 0;
  const onClose = (): void => {
    if (++closed === 2) onDone(firstError ? { error: firstError } : {});
  };
  const fail = (peer: Socket) => (err: Error): void => {
    firstError ??= err;
    if (!peer.destroyed) peer.resetAndDestroy();
  };
  downstream.on('error', fail(upstream));
  upstream.on('error', fail(downstream));
  downstream.once('close', onClose);
  upstream.once('close', onClose);
  // A socket that is fully shut down both ways is destroyed by Node once its writable side
  // finishes, because allowHalfOpen only keeps it open while the peer may still send.
  downstream.pipe(upstream);
  upstream.pipe(downstream);
}
