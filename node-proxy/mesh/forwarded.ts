// The client address an HBONE CONNECT carries in `forwarded` (RFC 7239). The source node proxy
// sends the app's own address and port, `for="10.200.1.2:58320"` (`for="[fd00::2]:58320"`): the
// tunnel's TCP connection is shared by many streams, so its address says nothing about which app
// connection a stream stands for. The destination logs the app's address:port as the source and
// keeps the tunnel's peer address in a separate field.
import { isIP } from 'node:net';
import type { Endpoint } from '../connections/table';
import { canonicalIp } from '../state/ip';

/** `for="ip:port"` (RFC 7239 §6: a node with a node-port is quoted; IPv6 in brackets). */
export function forwardedForEndpoint(ip: string, port: number): string {
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
    if (isIP(host) === 0) return undefined;
    const address = canonicalIp(host);
    if (!address) return undefined;
    if (portText === undefined) return { address };
    if (!/^\d{1,5}$/.test(portText)) return undefined; // obfuscated ports ("_abc") are not ports
    const port = Number(portText);
    return port > 0 && port < 65536 ? { address, port } : undefined;
  }
  return undefined;
}

/**
 * The source a destination reports for one HBONE stream: the app's address:port from `forwarded`
 * when the header speaks for the tunnel's own peer (same IP: the source node proxy dials from the
 * client pod's netns), else the tunnel's peer itself (a waypoint's, or a client that sent nothing
 * or another address: the log never names an address the verified peer does not have).
 */
export function streamSource(tunnelPeer: Endpoint, forwarded: string | undefined): Endpoint {
  const f = forwardedEndpoint(forwarded);
  if (f?.port !== undefined && f.address === (canonicalIp(tunnelPeer.address) ?? tunnelPeer.address)) return { address: tunnelPeer.address, port: f.port };
  return tunnelPeer;
}
