// The request headers an HBONE CONNECT carries besides `:method` and `:authority`, as ztunnel
// sends them: `forwarded` (RFC 7239, the original client address and port), and the W3C trace
// context (`traceparent`, `baggage`) so traces continue across the tunnel. The names are
// contracts (common/contracts/hbone.ts); this file reads and writes their values.
import { isIP } from 'node:net';
import { HEADER_BAGGAGE, HEADER_FORWARDED, HEADER_TRACEPARENT } from '../contracts/hbone';
import { canonicalIp } from '../ip';

export interface TunnelHeaders {
  /** RFC 7239, e.g. `for="10.200.1.4:58320"`; build it with forwardedFor(). */
  readonly forwarded?: string;
  readonly traceparent?: string;
  readonly baggage?: string;
}

export { HEADER_BAGGAGE, HEADER_FORWARDED, HEADER_TRACEPARENT };

/**
 * `for=…` for a source IP and, when given (1-65535), its port: `for="10.200.1.2:58320"`,
 * `for="[fd00::2]:443"`, `for=10.200.1.2`, `for="[fd00::2]"` (RFC 7239 §6: a node with a port is
 * quoted, IPv6 is bracketed and quoted).
 */
export function forwardedFor(ip: string, port = 0): string {
  const host = isIP(ip) === 6 ? `[${ip}]` : ip;
  return port > 0 && port < 65536 ? `for="${host}:${port}"` : isIP(ip) === 6 ? `for="${host}"` : `for=${ip}`;
}

/**
 * The `for=` node of the first element of a `forwarded` header: the address (canonical text) and
 * the port when one is given. Undefined for obfuscated or unknown nodes and anything malformed.
 */
export function forwardedEndpoint(header: string | undefined): { address: string; port?: number } | undefined {
  if (!header) return undefined;
  const first = header.split(',')[0] ?? '';
  for (const pair of first.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0 || pair.slice(0, eq).trim().toLowerCase() !== 'for') continue;
    let v = pair.slice(eq + 1).trim();
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    let host = v;
    let portText: string | undefined;
    if (v.startsWith('[')) {
      const close = v.indexOf(']');
      if (close < 0) return undefined;
      host = v.slice(1, close);
      const rest = v.slice(close + 1);
      if (rest !== '') {
        if (!rest.startsWith(':')) return undefined;
        portText = rest.slice(1);
      }
    } else if (v.split(':').length === 2) {
      [host, portText] = v.split(':') as [string, string];
    }
    const address = canonicalIp(host);
    if (!address) return undefined;
    if (portText === undefined) return { address };
    if (!/^\d{1,5}$/.test(portText)) return undefined; // obfuscated ports ("_abc") are not ports
    const port = Number(portText);
    return port > 0 && port < 65536 ? { address, port } : undefined;
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
