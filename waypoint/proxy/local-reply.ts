// Responses the waypoint makes itself (no route, RBAC denial, rate limit, fault abort, overflow,
// upstream failure): plain text, or for gRPC requests a trailers-only gRPC status — one HEADERS
// frame with END_STREAM on HTTP/2, where gRPC clients read the status.
import type { H2Response } from '../http2/server';
import type { MutableHeaders } from '../config/headers';
import type { Exchange } from './exchange';

const GRPC_FROM_HTTP: Record<number, number> = { 400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14 };

/**
 * Answer `status` with `body`, flagging `flag` ('-' or '': none). gRPC requests get the gRPC
 * status for `status` unless `asIs` (direct responses and redirects go out as configured).
 */
export function localReply(ex: Exchange, status: number, body: string, flag: string, headers?: MutableHeaders, asIs = false): void {
  if (flag && flag !== '-') ex.flags.push(flag);
  if (!ex.detail) ex.detail = body;
  if (ex.grpc && !asIs) return grpcReply(ex, GRPC_FROM_HTTP[status] ?? 2, body);
  const res = ex.res;
  ex.status = status;
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const length = Buffer.byteLength(body);
  const out: Record<string, string | string[]> = {};
  if (headers) for (const k in headers) if (headers[k] !== undefined) out[k] = headers[k]!;
  if (body) out['content-type'] = 'text/plain';
  else delete out['content-type'];
  out['content-length'] = String(length);
  res.writeHead(status, out);
  ex.responseBytes += length;
  res.end(body);
  if (!ex.req.readableEnded) ex.req.resume();
}

/** A trailers-only gRPC status. */
export function grpcReply(ex: Exchange, grpcStatus: number, message: string): void {
  const res = ex.res;
  ex.status = 200;
  ex.grpcStatus = String(grpcStatus);
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const head = { 'content-type': 'application/grpc', 'grpc-status': String(grpcStatus), 'grpc-message': encodeURIComponent(message) };
  if (ex.h2) {
    try {
      (res as H2Response).trailersOnly(head);
    } catch {
      res.destroy(); // the stream went away meanwhile
    }
  } else {
    res.writeHead(200, head);
    res.end();
  }
  if (!ex.req.readableEnded) ex.req.resume();
}
