// The per-workload BPF map entries that express one workload's capture settings, in the terms of
// bpf/include/maps.h but independent of byte layout: flags, excluded ports by direction, and
// excluded CIDRs as 16-byte (IPv4-mapped) prefixes. Pure; the enroller encodes and writes them.
import { isIP } from 'node:net';
import { type Cidr, ip16, parseCidr as parsePrefix } from '../../common/ip';
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

/** 16-byte form of an IPv4 or IPv6 address (IPv4-mapped for IPv4). */
export function addressBytes(ip: string): Uint8Array {
  if (isIP(ip) === 0) throw new CaptureConfigError(`'${ip}' is not an IP address`);
  return ip16(ip);
}

export function parseCidr(cidr: string): CidrEntry {
  let c: Cidr;
  try {
    c = parsePrefix(cidr.trim(), false);
  } catch (e) {
    throw new CaptureConfigError(`excluded CIDR '${cidr}' is not valid: ${(e as Error).message} (write it like 10.96.0.0/16 or fd00::/64)`);
  }
  const bits = (c.address.length === 4 ? 96 : 0) + c.length;
  const addr = new Uint8Array(16);
  addr.set(c.address, 16 - c.address.length);
  if (c.address.length === 4) addr[10] = addr[11] = 0xff;
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    addr[i]! &= (0xff << (8 - keep)) & 0xff;
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
  for (const a of addresses) if (isIP(a) === 0) throw new CaptureConfigError(`workload address '${a}' is not an IP address`);
  return { addresses, flags: CAPTURE_OUT | CAPTURE_IN, outboundPort: OUTBOUND_CAPTURE_PORT, ports, cidrs };
}
