// Streaming the upstream's response down: status and headers (hop-by-hop removed, the route's
// response mutations applied), the body piped with backpressure, trailers (HTTP/2 downstream),
// a gRPC trailers-only response kept as one HEADERS frame, and the route timeout spanning the
// whole response as Envoy's does (after the headers went out it cuts the response: flag UT).
import { applyMutations, type HeaderMutation, type MutableHeaders } from '../config/headers';
import { H1Response } from '../http1/server';
import type { H2Response } from '../http2/server';
import type { Exchange } from './exchange';
import { isHopByHop, type UpstreamHead } from './upstream';

export function respond(ex: Exchange, up: UpstreamHead, levels: readonly HeaderMutation[], deadline: number): void {
  const res = ex.res;
  let headers: MutableHeaders;
  if (res instanceof H1Response) {
    // The upstream head's own header object (made for this response alone), its hop-by-hop
    // headers blanked rather than deleted so that the object keeps its shape: no copy.
    headers = up.headers;
    for (const k in headers) if (isHopByHop(k)) headers[k] = undefined;
  } else {
    headers = {};
    for (const k in up.headers) {
      const v = up.headers[k];
      if (v !== undefined && !isHopByHop(k)) headers[k] = v;
    }
  }
  applyMutations(headers, levels);
  ex.status = up.status;
  const grpcStatus = up.headers['grpc-status'];
  if (typeof grpcStatus === 'string') ex.grpcStatus = grpcStatus;
  if (res.destroyed) {
    if (up.whole === undefined) up.body.destroy();
    return;
  }
  if (typeof grpcStatus === 'string' && ex.h2) {
    // A gRPC trailers-only response (status in the headers, END_STREAM): forward it as one,
    // since a gRPC client reads the status from a HEADERS frame that ends the stream.
    up.body.resume();
    try {
      (res as H2Response).trailersOnly(headers, up.status);
    } catch (err) {
      ex.detail = `bad upstream response headers: ${err instanceof Error ? err.message : String(err)}`;
      res.destroy();
    }
    return;
  }
  try {
    res.writeHead(up.status, headers as Record<string, string | string[]>);
  } catch (err) {
    if (up.whole === undefined) up.body.destroy();
    ex.detail = `bad upstream response headers: ${err instanceof Error ? err.message : String(err)}`;
    res.destroy();
    return;
  }
  const whole = up.whole;
  if (whole !== undefined) {
    // The whole response came with its head: down in one go (one write on HTTP/1.1), no body stream.
    ex.responseBytes += whole.length;
    res.end(whole);
    return;
  }
  const stream = new ResponseStream(ex, up);
  if (Number.isFinite(deadline)) {
    const timer = setTimeout(cutOnTimeout, Math.max(1, deadline - Date.now()), stream);
    res.once('close', () => clearTimeout(timer));
    res.once('finish', () => clearTimeout(timer));
  }
}

function cutOnTimeout(s: ResponseStream): void {
  const { ex, up } = s;
  if (ex.res.writableEnded) return;
  ex.flags.push('UT');
  ex.detail = 'upstream_response_timeout';
  up.body.destroy();
  ex.res.destroy();
}

/** The upstream body's events for one response, handled by one object. */
class ResponseStream {
  constructor(
    readonly ex: Exchange,
    readonly up: UpstreamHead,
  ) {
    const body = up.body;
    body.on('data', this.onData);
    body.once('end', this.onEnd);
    body.once('error', this.onError);
    body.once('close', this.onClose);
    ex.res.once('close', this.onDownstreamClose);
  }

  // The body goes down chunk by chunk with backpressure (what pipe() does, without its
  // per-response machinery).
  private readonly onData = (c: Buffer): void => {
    this.ex.responseBytes += c.length;
    if (!this.ex.res.write(c)) {
      this.up.body.pause();
      this.ex.res.once('drain', this.onDrain);
    }
  };

  private readonly onDrain = (): void => {
    this.up.body.resume();
  };

  private readonly onEnd = (): void => {
    this.up.onComplete(this.onTrailers);
  };

  private readonly onTrailers = (t: Record<string, string | string[] | undefined>): void => {
    const ex = this.ex;
    let tr: Record<string, string> | undefined;
    for (const k in t) {
      const v = t[k];
      if (v === undefined || k.charCodeAt(0) === 58) continue;
      (tr ??= {})[k] = Array.isArray(v) ? v.join(',') : v;
    }
    if (tr) {
      if (tr['grpc-status'] !== undefined) ex.grpcStatus = tr['grpc-status'];
      if (ex.h2) ex.res.addTrailers(tr);
    }
    ex.res.end();
  };

  private readonly onError = (): void => {
    this.ex.flags.push('UPE');
    this.ex.res.destroy();
  };

  private readonly onClose = (): void => {
    const { ex, up } = this;
    // An HTTP/2 stream closed with NO_ERROR after END_STREAM is complete even if 'end' has not
    // been emitted yet (e.g. a gRPC trailers-only response): its buffered end still drains.
    if ((up.body as { rstCode?: number }).rstCode === 0) return;
    if (!up.body.readableEnded && !ex.res.writableEnded && !ex.flags.includes('UT')) {
      ex.flags.push('UC');
      ex.res.destroy();
    }
  };

  private readonly onDownstreamClose = (): void => {
    if (!this.up.body.readableEnded) this.up.body.destroy();
  };
}
