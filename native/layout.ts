// The capture maps' keys and values (bpf/include/maps.h), encoded to and decoded from Buffers.
// `Structs` states every C struct's size and field offsets; native/layout.unit.test.ts checks it
// against the BTF of the built object, and the codecs below use only these offsets.
import { isIPv4 } from 'node:net';
import { type Cidr, ip16, ipFromBytes, ipText, parseCidr } from '../common/ip';
import { endianness } from 'node:os';

const LE = endianness() === 'LE';

export const Structs = {
  nm_workload: { size: 8, fields: { flags: 0, outbound_port: 4, _pad: 6 } },
  nm_port_key: { size: 16, fields: { netns_cookie: 0, port: 8, direction: 10, _pad: 11 } },
  nm_cidr_key: { size: 28, fields: { prefixlen: 0, netns_cookie: 4, addr: 12 } },
  nm_sockaddr: { size: 20, fields: { addr: 0, port: 16, family: 18 } },
  nm_pending: { size: 32, fields: { dst: 0, _pad: 20, netns_cookie: 24 } },
  nm_conn_key: { size: 32, fields: { netns_cookie: 0, addr: 8, port: 24, _pad: 26 } },
  nm_ip_key: { size: 16, fields: { addr: 0 } },
  // the same-node fast path (bpf/include/fastpath.h)
  nm_fp_key: { size: 48, fields: { netns_cookie: 0, local_addr: 8, remote_addr: 24, local_port: 40, remote_port: 44 } },
  nm_fp_permit: { size: 64, fields: { peer: 0, bytes: 48, flags: 56, _pad: 60 } },
  nm_fp_config: { size: 4, fields: { enabled: 0 } },
} as const;

/** Each map: name, and the key / value sizes its definition in maps.h declares. */
export const Maps = {
  nm_workloads: { key: 8, value: Structs.nm_workload.size },
  nm_excl_ports: { key: Structs.nm_port_key.size, value: 1 },
  nm_excl_cidrs: { key: Structs.nm_cidr_key.size, value: 1 },
  nm_pending: { key: 8, value: Structs.nm_pending.size },
  nm_orig_dst: { key: Structs.nm_conn_key.size, value: Structs.nm_sockaddr.size },
  nm_workload_ips: { key: Structs.nm_ip_key.size, value: 8 },
  nm_inbound: { key: Structs.nm_ip_key.size, value: 8 },
  nm_fp_socks: { key: Structs.nm_fp_key.size, value: 8 },
  nm_fp_permits: { key: Structs.nm_fp_key.size, value: Structs.nm_fp_permit.size },
  nm_fp_config: { key: 4, value: Structs.nm_fp_config.size },
} as const;
export type MapName = keyof typeof Maps;

export const WorkloadFlags = { CAPTURE_OUT: 0x1, CAPTURE_IN: 0x2 } as const;
export const Direction = { OUT: 1, IN: 2 } as const;
export type Direction = (typeof Direction)[keyof typeof Direction];
export const AF_INET = 2;
export const AF_INET6 = 10;

// --- host-order integers (the kernel stores __u64 / __u32 / __u16 in the CPU's order) ---------

function writeU64(b: Buffer, v: bigint, off: number): void {
  if (LE) b.writeBigUInt64LE(v, off);
  else b.writeBigUInt64BE(v, off);
}
function readU64(b: Buffer, off: number): bigint {
  return LE ? b.readBigUInt64LE(off) : b.readBigUInt64BE(off);
}
function writeU32(b: Buffer, v: number, off: number): void {
  if (LE) b.writeUInt32LE(v, off);
  else b.writeUInt32BE(v, off);
}
function readU32(b: Buffer, off: number): number {
  return LE ? b.readUInt32LE(off) : b.readUInt32BE(off);
}
function writeU16(b: Buffer, v: number, off: number): void {
  if (LE) b.writeUInt16LE(v, off);
  else b.writeUInt16BE(v, off);
}
function readU16(b: Buffer, off: number): number {
  return LE ? b.readUInt16LE(off) : b.readUInt16BE(off);
}

/** A __u64 key or value (netns cookie). */
export function encodeU64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  writeU64(b, v, 0);
  return b;
}
export function decodeU64(b: Buffer): bigint {
  return readU64(b, 0);
}

/** The __u8 value (1) of the exclusion maps. */
export const PRESENT: Buffer = Buffer.from([1]);

// --- addresses: 16 bytes, IPv6 or IPv4-mapped ---------------------------------------------------

/** '10.0.0.1' → ::ffff:10.0.0.1, '::ffff:10.0.0.1' and 'fd00::1' as IPv6; 16 bytes (common/ip.ts). */
export function encodeAddr(address: string): Buffer {
  try {
    return ip16(address);
  } catch {
    throw new TypeError(`not an IP address: '${address}'`);
  }
}

/** 16 bytes → '10.0.0.1' for IPv4-mapped, else the compressed IPv6 text. */
export function decodeAddr(b: Buffer, off = 0): string {
  return ipFromBytes(b.subarray(off, off + 16));
}

// --- structs -------------------------------------------------------------------------------

export interface Workload {
  flags: number;
  /** the node proxy's outbound listener port; 0 means 15001 */
  outboundPort: number;
}
export function encodeWorkload(w: Workload): Buffer {
  const s = Structs.nm_workload;
  const b = Buffer.alloc(s.size);
  writeU32(b, w.flags, s.fields.flags);
  writeU16(b, w.outboundPort, s.fields.outbound_port);
  return b;
}
export function decodeWorkload(b: Buffer): Workload {
  const s = Structs.nm_workload;
  return { flags: readU32(b, s.fields.flags), outboundPort: readU16(b, s.fields.outbound_port) };
}

export interface PortKey {
  netnsCookie: bigint;
  port: number;
  direction: Direction;
}
export function encodePortKey(k: PortKey): Buffer {
  const s = Structs.nm_port_key;
  const b = Buffer.alloc(s.size);
  writeU64(b, k.netnsCookie, s.fields.netns_cookie);
  writeU16(b, k.port, s.fields.port);
  b[s.fields.direction] = k.direction;
  return b;
}
export function decodePortKey(b: Buffer): PortKey {
  const s = Structs.nm_port_key;
  return { netnsCookie: readU64(b, s.fields.netns_cookie), port: readU16(b, s.fields.port), direction: b[s.fields.direction] as Direction };
}

export interface CidrKey {
  netnsCookie: bigint;
  /** '10.96.0.0/16' or 'fd00::/8' */
  cidr: string;
}
export function encodeCidrKey(k: CidrKey): Buffer {
  const s = Structs.nm_cidr_key;
  let c: Cidr;
  try {
    c = parseCidr(k.cidr);
  } catch (e) {
    throw new TypeError(`CIDR '${k.cidr}': ${(e as Error).message}`);
  }
  const v4 = c.address.length === 4;
  const b = Buffer.alloc(s.size);
  writeU32(b, 64 + (v4 ? 96 : 0) + c.length, s.fields.prefixlen);
  writeU64(b, k.netnsCookie, s.fields.netns_cookie);
  (v4 ? ip16(ipText(c.address)) : c.address).copy(b, s.fields.addr);
  return b;
}
export function decodeCidrKey(b: Buffer): CidrKey {
  const s = Structs.nm_cidr_key;
  const bits = readU32(b, s.fields.prefixlen) - 64;
  const addr = decodeAddr(b, s.fields.addr);
  const len = isIPv4(addr) ? bits - 96 : bits;
  return { netnsCookie: readU64(b, s.fields.netns_cookie), cidr: `${addr}/${len}` };
}

export interface SockAddr {
  /** '10.96.0.12' (IPv4 and IPv4-mapped) or an IPv6 address */
  address: string;
  port: number;
  /** the family the application's socket had: 4 or 6 */
  family: 4 | 6;
}
export function encodeSockAddr(a: SockAddr): Buffer {
  const s = Structs.nm_sockaddr;
  const b = Buffer.alloc(s.size);
  encodeAddr(a.address).copy(b, s.fields.addr);
  b.writeUInt16BE(a.port, s.fields.port);
  writeU16(b, a.family === 4 ? AF_INET : AF_INET6, s.fields.family);
  return b;
}
export function decodeSockAddr(b: Buffer, off = 0): SockAddr {
  const s = Structs.nm_sockaddr;
  return {
    address: decodeAddr(b, off + s.fields.addr),
    port: b.readUInt16BE(off + s.fields.port),
    family: readU16(b, off + s.fields.family) === AF_INET ? 4 : 6,
  };
}

export interface Pending {
  dst: SockAddr;
  netnsCookie: bigint;
}
export function encodePending(p: Pending): Buffer {
  const s = Structs.nm_pending;
  const b = Buffer.alloc(s.size);
  encodeSockAddr(p.dst).copy(b, s.fields.dst);
  writeU64(b, p.netnsCookie, s.fields.netns_cookie);
  return b;
}
export function decodePending(b: Buffer): Pending {
  const s = Structs.nm_pending;
  return { dst: decodeSockAddr(b, s.fields.dst), netnsCookie: readU64(b, s.fields.netns_cookie) };
}

export interface ConnKey {
  netnsCookie: bigint;
  /** the application's source address as the accepted socket shows it (remoteAddress) */
  address: string;
  /** the application's source port (remotePort) */
  port: number;
}
export function encodeConnKey(k: ConnKey): Buffer {
  const s = Structs.nm_conn_key;
  const b = Buffer.alloc(s.size);
  writeU64(b, k.netnsCookie, s.fields.netns_cookie);
  encodeAddr(k.address).copy(b, s.fields.addr);
  b.writeUInt16BE(k.port, s.fields.port);
  return b;
}
export function decodeConnKey(b: Buffer): ConnKey {
  const s = Structs.nm_conn_key;
  return { netnsCookie: readU64(b, s.fields.netns_cookie), address: decodeAddr(b, s.fields.addr), port: b.readUInt16BE(s.fields.port) };
}

export function encodeIpKey(address: string): Buffer {
  return encodeAddr(address);
}
export function decodeIpKey(b: Buffer): string {
  return decodeAddr(b, Structs.nm_ip_key.fields.addr);
}

// --- the same-node fast path (bpf/include/fastpath.h) ----------------------------------------

/** A socket as it sees itself: its netns, its own address and port, its peer's. Ports host order. */
export interface FastPathKey {
  netnsCookie: bigint;
  local: { address: string; port: number };
  remote: { address: string; port: number };
}
export function encodeFastPathKey(k: FastPathKey, out: Buffer = Buffer.alloc(Structs.nm_fp_key.size), off = 0): Buffer {
  const f = Structs.nm_fp_key.fields;
  writeU64(out, k.netnsCookie, off + f.netns_cookie);
  encodeAddr(k.local.address).copy(out, off + f.local_addr);
  encodeAddr(k.remote.address).copy(out, off + f.remote_addr);
  writeU32(out, k.local.port, off + f.local_port);
  writeU32(out, k.remote.port, off + f.remote_port);
  return out;
}
export function decodeFastPathKey(b: Buffer, off = 0): FastPathKey {
  const f = Structs.nm_fp_key.fields;
  return {
    netnsCookie: readU64(b, off + f.netns_cookie),
    local: { address: decodeAddr(b, off + f.local_addr), port: readU32(b, off + f.local_port) },
    remote: { address: decodeAddr(b, off + f.remote_addr), port: readU32(b, off + f.remote_port) },
  };
}

export const FastPathFlags = { REDIRECT: 0x1 } as const;

/** One direction of a fast-path connection, keyed by the sending socket. */
export interface FastPathPermit {
  peer: FastPathKey;
  bytes: bigint;
  flags: number;
}
export function encodeFastPathPermit(p: FastPathPermit): Buffer {
  const f = Structs.nm_fp_permit.fields;
  const b = Buffer.alloc(Structs.nm_fp_permit.size);
  encodeFastPathKey(p.peer, b, f.peer);
  writeU64(b, p.bytes, f.bytes);
  writeU32(b, p.flags, f.flags);
  return b;
}
export function decodeFastPathPermit(b: Buffer): FastPathPermit {
  const f = Structs.nm_fp_permit.fields;
  return { peer: decodeFastPathKey(b, f.peer), bytes: readU64(b, f.bytes), flags: readU32(b, f.flags) };
}
export function encodeFastPathConfig(enabled: boolean): Buffer {
  const b = Buffer.alloc(Structs.nm_fp_config.size);
  writeU32(b, enabled ? 1 : 0, Structs.nm_fp_config.fields.enabled);
  return b;
}
