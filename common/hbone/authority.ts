// The CONNECT `:authority` of an HBONE stream names the workload endpoint and port the tunnel
// leads to: "10.200.1.5:8080" or "[fd00::5]:8080". Only literal IP addresses are valid (the
// node proxy resolved names and VIPs before it opened the tunnel), and the port is 1..65535.
import { isIP } from 'node:net';

export interface TunnelTarget {
  /** The IP address, without brackets. */
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
}

/** Why `authority` is not an "ip:port" HBONE target, or the target. */
export function parseAuthority(authority: string): TunnelTarget | { readonly problem: string } {
  let host: string;
  let portText: string;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0 || authority[close + 1] !== ':') return { problem: `'${authority}' is not [ipv6]:port` };
    host = authority.slice(1, close);
    portText = authority.slice(close + 2);
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon < 0) return { problem: `'${authority}' has no port (expected ip:port)` };
    host = authority.slice(0, colon);
    portText = authority.slice(colon + 1);
    if (host.includes(':')) return { problem: `'${authority}': an IPv6 address must be written in brackets, [ip]:port` };
  }
  const family = isIP(host);
  if (family !== 4 && family !== 6) return { problem: `'${host}' in '${authority}' is not an IP address` };
  if (family === 6 && !authority.startsWith('[')) return { problem: `'${authority}': an IPv6 address must be written in brackets` };
  if (family === 4 && authority.startsWith('[')) return { problem: `'${authority}': only IPv6 addresses are written in brackets` };
  if (!/^[0-9]{1,5}$/.test(portText)) return { problem: `'${portText}' in '${authority}' is not a port number` };
  const port = Number(portText);
  if (port < 1 || port > 65535) return { problem: `port ${port} in '${authority}' is outside 1..65535` };
  return { host, port, family };
}

export function isTarget(r: TunnelTarget | { readonly problem: string }): r is TunnelTarget {
  return !('problem' in r);
}

/** Parses an authority or throws an Error that names the problem. */
export function targetOf(authority: string): TunnelTarget {
  const r = parseAuthority(authority);
  if (!isTarget(r)) throw new Error(`invalid HBONE authority: ${r.problem}`);
  return r;
}

/** "ip:port", with brackets around IPv6 addresses. */
export function formatAuthority(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
