// The per-workload BPF map entries that express one workload's capture settings, in the terms of
// bpf/include/maps.h but independent of byte layout: flags, excluded ports by direction, and
// excluded CIDRs as 16-byte (IPv4-mapped) prefixes. Pure; the enroller encodes and writes them.
import { isIPv4, isIPv6 } from 'node:net';
import type { CaptureWorkload } from './workload';
import { OUTBOUND_CAPTURE_PORT } from '../../common/contracts/ports';

export const CAPTURE_OUT = 0x1;
export const CAPTURE_IN = 0x2;
export const DIR_OUT = 1;
export const DIR_IN = 2;

export interface PortEntry {
  readonly port: number;
  readonly direction: typeof DIR_OUT | typeof DIR_IN;
}

export interface CidrEntry {
  /** Address bits that count (0..128), over the 16-byte form. */
  readonly bits: number;
  /** 16 bytes: IPv6, or IPv4-mapped (::ffff:a.b.c.d); bits past `bits` are zero. */
  readonly addr: Uint8Array;
  /** The CIDR as written ("10.0.0.0/8"). */
  readonly text: string;
}

export interface CaptureEntries {
  /** The workload's own addresses: sk_lookup finds the workload (and its 15006 listener) by them. */
  readonly addresses: readonly string[];
  readonly flags: number;
  readonly outboundPort: number;
  readonly ports: readonly PortEntry[];
  readonly cidrs: readonly CidrEntry[];
}

export class CaptureConfigError extends Error {
  override name = 'CaptureConfigError';
}

/** 16-byte form of an IPv4 or IPv6 address. */
export function addressBytes(ip: string): Uint8Array {
  const out = new Uint8Array(16);
  if (isIPv4(ip)) {
    out[10] = 0xff;
    out[11] = 0xff;
    ip.split('.').forEach((o, i) => (out[12 + i] = Number(o)));
    return out;
  }
  if (!isIPv6(ip)) throw new CaptureConfigError(`'${ip}' is not an IP address`);
  let text = ip.split('%')[0];
  // an embedded dotted IPv4 tail (::ffff:1.2.3.4) becomes two hex groups
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const o = v4[1].split('.').map(Number);
    text = text.slice(0, -v4[1].length) + `${((o[0] << 8) | o[1]).toString(16)}:${((o[2] << 8) | o[3]).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

export function parseCidr(cidr: string): CidrEntry {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr.trim());
  const bad = (why: string): CaptureConfigError =>
    new CaptureConfigError(`excluded CIDR '${cidr}' is not valid: ${why} (write it like 10.96.0.0/16 or fd00::/64)`);
  if (!m) throw bad('missing /prefix');
  const ip = m[1];
  const len = Number(m[2]);
  let bits: number;
  if (isIPv4(ip)) {
    if (len > 32) throw bad('an IPv4 prefix is at most 32');
    bits = 96 + len;
  } else if (isIPv6(ip)) {
    if (len > 128) throw bad('an IPv6 prefix is at most 128');
    bits = len;
  } else throw bad(`'${ip}' is not an IP address`);
  const addr = addressBytes(ip);
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    addr[i] &= (0xff << (8 - keep)) & 0xff;
  }
  return { bits, addr, text: cidr.trim() };
}

function checkPort(p: number, what: string): number {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new CaptureConfigError(`${what} ${p} is not a TCP port (1-65535)`);
  return p;
}

/** The entries for one workload; throws CaptureConfigError naming the bad setting. */
export function captureEntries(w: CaptureWorkload): CaptureEntries {
  const ports: PortEntry[] = [];
  for (const p of new Set(w.excludedOutboundPorts)) ports.push({ port: checkPort(p, 'excluded outbound port'), direction: DIR_OUT });
  for (const p of new Set(w.excludedInboundPorts)) ports.push({ port: checkPort(p, 'excluded inbound port'), direction: DIR_IN });
  const cidrs = [...new Set(w.excludedCidrs)].map(parseCidr);
  const addresses = [...new Set(w.addresses)];
  for (const a of addresses) if (!isIPv4(a) && !isIPv6(a)) throw new CaptureConfigError(`workload address '${a}' is not an IP address`);
  return { addresses, flags: CAPTURE_OUT | CAPTURE_IN, outboundPort: OUTBOUND_CAPTURE_PORT, ports, cidrs };
}
