// What the request path reads of a downstream request's body (http1/server.ts's H1Request,
// http2/server.ts's H2Request): events and flow control of the stream the body comes from.
import type { Readable } from 'node:stream';

/** A body stream event's listener, as node types it. */
export type BodyListener = Parameters<Readable['on']>[1];

/** A request whose body is the Readable `stream` (made on first use where that saves work). */
export abstract class StreamBackedRequest {
  abstract get stream(): Readable;

  on(event: string, fn: BodyListener): this {
    this.stream.on(event, fn);
    return this;
  }

  once(event: string, fn: BodyListener): this {
    this.stream.once(event, fn);
    return this;
  }

  resume(): this {
    this.stream.resume();
    return this;
  }

  pause(): this {
    this.stream.pause();
    return this;
  }
}
