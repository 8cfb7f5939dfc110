// The request body on its way upstream, kept for replay (retries, mirrors) up to the buffer limit
// (Envoy's per-request buffer) while it streams to the current attempt with backpressure.
import { H1Request } from '../http1/server';
import type { BodySink } from './upstream';

function ignore(): void {}

/** Where a request body comes from: a Readable (an HTTP/2 stream, node:http's request) or an H1Request. */
export interface BodySource {
  on(event: 'data', fn: (chunk: Buffer) => void): unknown;
  on(event: 'error', fn: (err: Error) => void): unknown;
  once(event: 'end', fn: () => void): unknown;
  resume(): unknown;
  pause(): unknown;
}

/** Keeps the request body for replay (retries, mirror) while it streams to the current attempt. */
export class BodyTee {
  chunks: Buffer[] = [];
  size = 0;
  overflow = false;
  ended = false;
  private sink: BodySink | undefined;
  /** Made when a body is streamed (most requests have none). */
  private onDrainFn: (() => void) | undefined;
  private get onDrain(): () => void {
    return (this.onDrainFn ??= () => this.src.resume());
  }
  constructor(
    private readonly src: BodySource,
    private readonly limit: number,
    /** Counts the request's bytes (the exchange's `requestBytes`). */
    counter: { requestBytes: number },
    /** False when the request is known to carry no body (then nothing is listened to). */
    hasBody = true,
  ) {
    if (!hasBody) {
      this.ended = true;
      // The waypoint's own HTTP/1.1 request without a body needs nothing (its end is pushed when
      // read); node:http2's must be read to its end for the stream to close.
      if (src instanceof H1Request && src.bodiless) return;
      src.resume();
      src.on('error', ignore);
      return;
    }
    src.on('data', (c: Buffer) => {
      counter.requestBytes += c.length;
      if (!this.overflow) {
        this.size += c.length;
        if (this.size > this.limit) {
          this.overflow = true;
          this.chunks = [];
        } else this.chunks.push(c);
      }
      if (this.sink && !this.sink.write(c)) {
        src.pause();
        this.sink.once('drain', this.onDrain);
      } else if (!this.sink) src.pause();
    });
    src.once('end', () => {
      this.ended = true;
      this.sink?.end();
    });
    src.on('error', ignore);
  }
  /** Send the body to a new attempt; false when it cannot be replayed (too large, already streamed). */
  attach(sink: BodySink, first: boolean): boolean {
    if (!first && this.overflow) return false;
    this.detach();
    this.sink = sink;
    sink.on('error', ignore);
    if (!first) for (const c of this.chunks) sink.write(c);
    if (this.ended) sink.end();
    else this.src.resume();
    return true;
  }
  detach(): void {
    if (this.sink && this.onDrainFn) this.sink.off('drain', this.onDrainFn);
    this.sink = undefined;
  }
  /** The whole body, once received, if it fit the buffer. */
  complete(): Promise<Buffer | undefined> {
    if (this.ended) return Promise.resolve(this.overflow ? undefined : Buffer.concat(this.chunks));
    return new Promise((resolve) => this.src.once('end', () => resolve(this.overflow ? undefined : Buffer.concat(this.chunks))));
  }
}
