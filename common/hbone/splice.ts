// Splicing a tunnel stream and the connection it stands for: bytes flow both ways with
// backpressure, a clean end of one direction half-closes the other side (END_STREAM <-> FIN),
// and an abnormal end of either side resets the other (RST_STREAM CONNECT_ERROR towards the
// tunnel peer, TCP RST towards a socket), as ztunnel does.
// Per chunk the data path runs one listener per direction (copy and count) and nothing else.
import { Socket } from 'node:net';
import type { Http2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { RST_CONNECT_ERROR } from './settings';

export interface SpliceResult {
  /** Bytes read from the downstream side and written towards the upstream. */
  readonly bytesToUpstream: number;
  /** Bytes read from the upstream side and written towards the downstream. */
  readonly bytesToDownstream: number;
  /** The first error either side reported, or why the splice was cut short. */
  readonly error?: Error;
  /** True when both directions ended cleanly. */
  readonly clean: boolean;
  readonly durationMs: number;
}

function isHttp2Stream(d: Duplex): d is Http2Stream {
  return typeof (d as Partial<Http2Stream>).close === 'function' && 'rstCode' in d && 'session' in d;
}

/**
 * Ends `d` abnormally in the way its peer understands: RST_STREAM towards a tunnel peer, TCP RST
 * towards a socket, destroy otherwise.
 *
 * node:http2's `close(code)` ends the writable side first, so the peer would see END_STREAM (a
 * clean half-close) before the RST_STREAM. While the writable side is open the stream is
 * therefore destroyed, which sends RST_STREAM(INTERNAL_ERROR) alone; once it has ended,
 * RST_STREAM(CONNECT_ERROR) is sent as RFC 9113 §8.5 describes.
 */
export function abortSide(d: Duplex, err?: Error): void {
  if (d.destroyed) return;
  if (isHttp2Stream(d)) {
    if (d.closed) return;
    if (d.writableEnded) d.close(RST_CONNECT_ERROR);
    else d.destroy(err ?? new Error('the proxied connection was reset'));
    return;
  }
  // Node (20) cannot reset a socket whose writable side was already ended: resetAndDestroy()
  // then marks it destroyed but never closes the handle nor emits 'close' (an fd and every
  // record waiting for that 'close' leak). Such a socket has sent its FIN; destroy it instead.
  if (d instanceof Socket && !d.connecting && !d.writableEnded) {
    try {
      d.resetAndDestroy();
      return;
    } catch {
      // not a TCP handle (e.g. a Unix socket or a TLS wrapper): fall through to destroy
    }
  }
  d.destroy(err);
}

/**
 * Bytes a writing side may hold (written by us, not yet taken by its kernel socket or HTTP/2
 * session) before the reading side is paused. stream.pipe pauses at the writable's high-water
 * mark (16 KiB), which every 64 KiB socket read and every 16 KiB TLS record exceeds: the reading
 * side was stopped and restarted after each chunk (readStop/readStart, a deferred 'drain', more
 * event-loop turns). The HTTP/2 flow-control windows (settings.ts) bound the tunnel side anyway.
 */
export const FORWARD_BUFFER_BYTES = 256 * 1024;

/**
 * Copies `src` into `dst` until `src` ends, then ends `dst` (FIN / END_STREAM); `count` sees each
 * chunk's size. Pauses `src` only while `dst` holds FORWARD_BUFFER_BYTES or more; stops writing
 * once `dst` is destroyed (the splice's close handling resets the other side then).
 */
function forward(src: Duplex, dst: Duplex, count: (n: number) => void): void {
  let waiting = false;
  const onDrain = (): void => {
    waiting = false;
    src.resume();
  };
  src.on('data', (chunk: Buffer) => {
    count(chunk.length);
    if (dst.destroyed || dst.writableEnded) return;
    if (!dst.write(chunk) && !waiting && dst.writableLength >= FORWARD_BUFFER_BYTES) {
      waiting = true;
      src.pause();
      dst.once('drain', onDrain);
    }
  });
  const endDst = (): void => {
    if (!dst.destroyed && !dst.writableEnded) dst.end();
  };
  // as stream.pipe does: a side whose end was already emitted before the splice began (a captured
  // socket whose client sent FIN while its tunnel was dialled: net.Socket emits 'end' on FIN even
  // when paused) never emits it again
  if (src.readableEnded) process.nextTick(endDst);
  else src.once('end', endDst);
  // as stream.pipe did: a side its owner had paused (a captured socket while its upstream was
  // dialled) starts flowing now
  if (!src.readableFlowing) src.resume();
}

/**
 * Connects `downstream` and `upstream` both ways until both have closed, then calls `onDone`
 * once. For TCP sockets use `allowHalfOpen: true`, otherwise a FIN from one side closes both
 * directions early.
 */
export function splice(downstream: Duplex, upstream: Duplex, onDone?: (r: SpliceResult) => void): void {
  const started = performance.now();
  let toUp = 0;
  let toDown = 0;
  let firstError: Error | undefined;
  let closed = 0;
  let clean = true;

  const onError = (err: Error): void => {
    firstError ??= err;
  };
  const onClose = (self: Duplex, other: Duplex) => {
    let seen = false;
    return (): void => {
      if (seen) return;
      seen = true;
      sideClosed(self, other);
    };
  };
  const sideClosed = (self: Duplex, other: Duplex): void => {
    closed++;
    if (!(self.readableEnded && self.writableFinished)) {
      clean = false;
      if (!other.destroyed) abortSide(other, firstError);
    }
    if (closed === 2) {
      onDone?.({ bytesToUpstream: toUp, bytesToDownstream: toDown, error: firstError, clean: clean && !firstError, durationMs: performance.now() - started });
    }
  };

  downstream.on('error', onError);
  upstream.on('error', onError);
  const downClosed = onClose(downstream, upstream);
  const upClosed = onClose(upstream, downstream);
  downstream.once('close', downClosed);
  upstream.once('close', upClosed);
  // A tunnel peer's RST_STREAM must reach the other side as a reset before the stream's local
  // end-of-data (which node:http2 emits after 'aborted') could turn into a clean FIN.
  const onAborted = (other: Duplex) => (): void => {
    clean = false;
    abortSide(other, firstError);
  };
  if (isHttp2Stream(downstream)) downstream.once('aborted', onAborted(upstream));
  if (isHttp2Stream(upstream)) upstream.once('aborted', onAborted(downstream));
  forward(downstream, upstream, (n) => {
    toUp += n;
  });
  forward(upstream, downstream, (n) => {
    toDown += n;
  });
  // A side that had already closed before the splice began never emits 'close' again.
  if (downstream.closed) process.nextTick(downClosed);
  if (upstream.closed) process.nextTick(upClosed);
}
