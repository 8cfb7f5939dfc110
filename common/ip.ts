// IP addresses and CIDRs, the one implementation every process uses: text <-> bytes (4 for IPv4,
// 16 for IPv6, the form the workload API carries), the 16-byte IPv4-mapped form the BPF maps key
// by, CIDR parsing and prefix membership. Parsing and formatting are ipaddr.js's (RFC 5952 text,
// embedded IPv4 tails, zones); what counts as an address is node:net's isIP, which accepts only
// the dotted-quad IPv4 form (ipaddr.js also takes "10.1" or hex octets, which no config means).
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * The 4 bytes of a dotted quad as node:net's isIPv4 accepts it (decimal 0-255, no leading zero),
 * else undefined. Every connection parses a few addresses (original destination, authority,
 * forwarded, policy); ipaddr.js's general parser was a visible share of a new connection's cost.
 */
function parseDottedQuad(ip: string): number[] | undefined {
  const n = ip.length;
  if (n < 7 || n > 15) return undefined;
  const out = [0, 0, 0, 0];
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i < n; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || part === 3) return undefined;
      out[part++] = value;
      value = digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && value === 0) return undefined; // a leading zero
      value = value * 10 + (c - 48);
      if (++digits > 3 || value > 255) return undefined;
    } else {
      return undefined;
    }
  }
  if (digits === 0 || part !== 3) return undefined;
  out[3] = value;
  return out;
}

/** The bytes of text node:net calls an IP (a zone, fe80::1%eth0, names an interface and is dropped); undefined otherwise. */
function parse(ip: string): number[] | undefined {
  const quad = parseDottedQuad(ip);
  if (quad) return quad;
  const family = isIP(ip);
  if (family === 0) return undefined;
  // Node's isIPv6 accepts any text after '%', which must not reach the parser (found by
  // fuzz/targets/hbone: a `forwarded` header "for=fe80::1%eth010.200.1.565536").
  const text = family === 6 ? ip.split('%')[0]! : ip;
  return ipaddr.parse(text).toByteArray();
}

/** The bytes of IP text; an embedded IPv4 tail (::ffff:10.0.0.1) stays 16 bytes. Throws on non-IPs. */
export function ipBytes(ip: string): Buffer {
  const b = parse(ip);
  if (!b) throw new Error(`not an IP address: ${ip}`);
  return Buffer.from(b);
}

/** Canonical text (RFC 5952 for IPv6) of 4 or 16 address bytes; throws on any other length. */
export function ipText(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw new Error(`an IP address has 4 or 16 bytes, got ${bytes.length}`);
  return ipaddr.fromByteArray(Array.from(bytes)).toString();
}

const MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

const isMapped = (b: Uint8Array): boolean => b.length === 16 && MAPPED_PREFIX.equals(b.subarray(0, 12));

/** Canonical text of address bytes (4 or 16), IPv4-mapped IPv6 folded to IPv4; throws on any other length. */
export function ipFromBytes(bytes: Uint8Array): string {
  return ipText(isMapped(bytes) ? bytes.subarray(12) : bytes);
}

/**
 * Canonical text of an IP written as text (RFC 5952 for IPv6; IPv4-mapped ::ffff:10.0.0.1, as
 * dual-stack sockets report IPv4 peers, folded to IPv4); undefined when it is not an IP.
 */
export function canonicalIp(text: string): string | undefined {
  const b = parse(text);
  return b && ipFromBytes(Uint8Array.from(b));
}

/** Address bytes of IP text (IPv4-mapped folded to 4 bytes); undefined when not an IP. */
export function ipToBytes(text: string): Buffer | undefined {
  const b = parse(text);
  if (!b) return undefined;
  const buf = Buffer.from(b);
  return isMapped(buf) ? buf.subarray(12) : buf;
}

/** The 16-byte form of an address (IPv4 as ::ffff:a.b.c.d), as the BPF maps key by; brackets and a zone are dropped. Throws on non-IPs. */
export function ip16(ip: string): Buffer {
  const b = parse(ip.startsWith('[') ? ip.replace(/^\[(.*)\]$/, '$1') : ip);
  if (!b) throw new Error(`not an IP address: '${ip}'`);
  if (b.length === 16) return Buffer.from(b);
  const out = Buffer.alloc(16);
  MAPPED_PREFIX.copy(out);
  out.set(b, 12);
  return out;
}

/** An IP prefix: the address bytes (4 or 16) and the prefix length in bits. */
export interface Cidr {
  readonly address: Buffer;
  readonly length: number;
}

export class CidrError extends Error {
  override name = 'CidrError';
}

/**
 * "10.0.0.0/8", "fd00::/8", or (with `bareAddress`) an address alone as a /32 or /128. The
 * address keeps its written bits (not masked). Throws CidrError saying what is wrong.
 */
export function parseCidr(text: string, bareAddress = true): Cidr {
  const slash = text.indexOf('/');
  if (slash < 0) {
    const b = bareAddress ? parse(text) : undefined;
    if (!b) throw new CidrError(bareAddress ? `'${text}' is not an IP address or a CIDR` : 'missing /prefix');
    return { address: Buffer.from(b), length: b.length * 8 };
  }
  const ip = text.slice(0, slash);
  const lenText = text.slice(slash + 1);
  if (isIP(ip) === 0) throw new CidrError(`'${ip}' is not an IP address`);
  if (!/^\d{1,3}$/.test(lenText)) throw new CidrError(`prefix length '${lenText}' is not a number`);
  let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    parsed = ipaddr.parseCIDR(`${ip.split('%')[0]}/${lenText}`);
  } catch {
    throw new CidrError(`an IPv${isIP(ip)} prefix length is at most ${isIP(ip) === 4 ? 32 : 128}`);
  }
  return { address: Buffer.from(parsed[0].toByteArray()), length: parsed[1] };
}

/** Why `text` is not a CIDR (or a bare address, when allowed), or undefined when it is one. */
export function cidrProblem(text: string, bareAddress = true): string | undefined {
  try {
    parseCidr(text, bareAddress);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Whether address bytes lie in a prefix of the same family (4 bytes in an IPv4 prefix, 16 in an IPv6 one). */
export function cidrContains(c: Cidr, ip: Uint8Array | undefined): boolean {
  if (!ip || ip.length !== c.address.length) return false;
  const bits = Math.min(c.length, ip.length * 8);
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (ip[i] !== c.address[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (ip[whole]! & mask) === (c.address[whole]! & mask);
}
