// Byte layouts of the capture maps' keys and values (bpf/include/maps.h), little-endian host.
// The native map checks every buffer's size against the map's own key/value size, so a layout
// that drifts from the C structs fails loudly at the first update.
import { addressBytes, type CidrEntry, type PortEntry } from './entries';
import type { Endpoint } from '../connections/table';

export const AF_INET = 2;
export const AF_INET6 = 10;

/** Key of nm_workloads and nm_inbound: the netns cookie (__u64). */
export function cookieKey(cookie: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(cookie);
  return b;
}

/** struct nm_workload { __u32 flags; __u16 outbound_port; __u16 _pad; } */
export function workloadValue(flags: number, outboundPort: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(flags, 0);
  b.writeUInt16LE(outboundPort, 4);
  return b;
}

/** struct nm_port_key { __u64 netns_cookie; __u16 port (host order); __u8 direction; __u8 _pad[5]; } */
export function portKey(cookie: bigint, p: PortEntry): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(cookie, 0);
  b.writeUInt16LE(p.port, 8);
  b.writeUInt8(p.direction, 10);
  return b;
}

/** struct nm_cidr_key { __u32 prefixlen; __u8 netns_cookie[8]; __u8 addr[16]; } — prefixlen counts the cookie. */
export function cidrKey(cookie: bigint, c: CidrEntry): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt32LE(64 + c.bits, 0);
  b.writeBigUInt64LE(cookie, 4);
  Buffer.from(c.addr).copy(b, 12);
  return b;
}

export const ONE = Buffer.from([1]);

/** struct nm_conn_key { __u64 netns_cookie; __u8 addr[16]; __u16 port (network order); __u16 _pad[3]; } */
export function connKey(cookie: bigint, client: Endpoint): Buffer {
  const b = Buffer.alloc(32);
  b.writeBigUInt64LE(cookie, 0);
  Buffer.from(addressBytes(client.address)).copy(b, 8);
  b.writeUInt16BE(client.port, 24);
  return b;
}

function formatV6(a: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(a.readUInt16BE(i).toString(16));
  // compress the longest run of zero groups (RFC 5952)
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** struct nm_sockaddr { __u8 addr[16]; __u16 port (network order); __u16 family; } */
export function decodeSockaddr(b: Buffer): Endpoint & { family: number } {
  const addr = b.subarray(0, 16);
  const port = b.readUInt16BE(16);
  const family = b.readUInt16LE(18);
  const mapped = addr.readBigUInt64BE(0) === 0n && addr.readUInt32BE(8) === 0xffff;
  const address = mapped ? `${addr[12]}.${addr[13]}.${addr[14]}.${addr[15]}` : formatV6(addr);
  return { address, port, family };
}
