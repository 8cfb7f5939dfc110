// The request headers an HBONE CONNECT carries besides `:method` and `:authority`, as ztunnel
// sends them: `forwarded` (RFC 7239, the original client address), and the W3C trace context
// (`traceparent`, `baggage`) so traces continue across the tunnel.
import { isIP } from 'node:net';

export interface TunnelHeaders {
  /** RFC 7239, e.g. `for="10.200.1.4"`; build it with forwardedFor(). */
  readonly forwarded?: string;
  readonly traceparent?: string;
  readonly baggage?: string;
}

export const HEADER_FORWARDED = 'forwarded';
export const HEADER_TRACEPARENT = 'traceparent';
export const HEADER_BAGGAGE = 'baggage';

/** `forwarded: for=…` for a source IP (IPv6 quoted and bracketed as RFC 7239 requires). */
export function forwardedFor(ip: string): string {
  return isIP(ip) === 6 ? `for="[${ip}]"` : `for=${ip}`;
}

/** The `for=` address of a `forwarded` header (the first element), or undefined. */
export function forwardedClient(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const first = header.split(',')[0] ?? '';
  for (const pair of first.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0 || pair.slice(0, eq).trim().toLowerCase() !== 'for') continue;
    let v = pair.slice(eq + 1).trim();
    if (v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    if (v.startsWith('[')) v = v.slice(1, v.indexOf(']') < 0 ? undefined : v.indexOf(']'));
    return isIP(v) ? v : undefined;
  }
  return undefined;
}

const TRACEPARENT_RE = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The headers to put on the CONNECT request; values that would be malformed are left out. */
export function requestHeaders(h: TunnelHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  if (h.forwarded) out[HEADER_FORWARDED] = h.forwarded;
  if (h.traceparent && TRACEPARENT_RE.test(h.traceparent)) out[HEADER_TRACEPARENT] = h.traceparent;
  if (h.baggage) out[HEADER_BAGGAGE] = h.baggage;
  return out;
}

/** The tunnel headers a server received (missing ones undefined). */
export function tunnelHeadersOf(headers: Readonly<Record<string, string | string[] | undefined>>): TunnelHeaders {
  const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v.join(', ') : v);
  return {
    forwarded: one(headers[HEADER_FORWARDED]),
    traceparent: one(headers[HEADER_TRACEPARENT]),
    baggage: one(headers[HEADER_BAGGAGE]),
  };
}
