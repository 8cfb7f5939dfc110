// IP addresses: text <-> bytes (4 for IPv4, 16 for IPv6), the form the workload API carries and
// the BPF maps key by. Shared by the control plane (translation) and the data plane (indexes).
import { isIP, isIPv4, isIPv6 } from 'node:net';

/** The bytes of IP text; an embedded IPv4 tail (::ffff:10.0.0.1) stays 16 bytes. Throws on non-IPs. */
export function ipBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (!isIPv6(ip)) throw new Error(`not an IP address: ${ip}`);
  // A zone (fe80::1%eth0) names an interface, not address bits; Node's isIPv6 accepts any text
  // after '%', which must not reach the parsing below (found by fuzz/targets/hbone: a `forwarded`
  // header "for=fe80::1%eth010.200.1.565536" threw a RangeError inside the node proxy).
  let text = ip.split('%')[0]!;
  // An embedded IPv4 tail (::ffff:10.0.0.1) becomes two hex groups.
  const v4 = text.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text = text.slice(0, -v4[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** Canonical text (RFC 5952 for IPv6) of 4 or 16 address bytes; throws on any other length. */
export function ipText(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) throw new Error(`an IP address has 4 or 16 bytes, got ${bytes.length}`);
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

const MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

/** Canonical text of address bytes (4 or 16), IPv4-mapped IPv6 folded to IPv4; throws on any other length. */
export function ipFromBytes(bytes: Uint8Array): string {
  if (bytes.length === 16 && Buffer.compare(Buffer.from(bytes.subarray(0, 12)), MAPPED_PREFIX) === 0) return ipText(bytes.subarray(12));
  return ipText(bytes);
}

/**
 * Canonical text of an IP written as text (RFC 5952 for IPv6; IPv4-mapped ::ffff:10.0.0.1, as
 * dual-stack sockets report IPv4 peers, folded to IPv4); undefined when it is not an IP.
 */
export function canonicalIp(text: string): string | undefined {
  if (isIP(text) === 0) return undefined;
  return ipFromBytes(ipBytes(text));
}

/** Address bytes of IP text (IPv4-mapped folded to 4 bytes); undefined when not an IP. */
export function ipToBytes(text: string): Buffer | undefined {
  if (isIP(text) === 0) return undefined;
  const b = ipBytes(text);
  if (b.length === 16 && Buffer.compare(b.subarray(0, 12), MAPPED_PREFIX) === 0) return b.subarray(12);
  return b;
}
