// IP addresses as the node proxy's indexes key them: canonical text (RFC 5952 for IPv6), with
// IPv4-mapped IPv6 (::ffff:10.0.0.1, as dual-stack sockets report IPv4 peers) folded to IPv4.
import { isIP } from 'node:net';
import { ipBytes, ipText } from '../../common/ip';

const MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

/** Canonical text of address bytes (4 or 16); throws on any other length. */
export function ipFromBytes(bytes: Uint8Array): string {
  if (bytes.length === 16 && Buffer.compare(Buffer.from(bytes.subarray(0, 12)), MAPPED_PREFIX) === 0) return ipText(bytes.subarray(12));
  return ipText(bytes);
}

/** Canonical text of an IP written as text; undefined when it is not an IP. */
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

/** Index key of an address in a network ('' = the default network). */
export function networkKey(network: string, ip: string): string {
  return `${network}/${ip}`;
}
