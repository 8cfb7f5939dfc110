// The TypeScript mirror of bpf/include/maps.h must match the C structs byte for byte: compare
// `Structs` with the BTF of the built object (sizes and every member's offset, including
// padding), and check the codecs round-trip.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { bpfObjectDir, projectRoot } from '../common/paths';
import * as layout from './layout';

interface BtfMember {
  name: string;
  type_id: number;
  bits_offset: number;
}
interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  members?: BtfMember[];
}

describe('capture map layouts (native/layout.ts vs bpf/include/maps.h)', () => {
  let structs: Map<string, BtfType>;

  beforeAll(() => {
    execFileSync('make', ['-s', '-C', join(projectRoot, 'bpf')], { stdio: 'inherit' });
    const raw = execFileSync('bpftool', ['btf', 'dump', 'file', join(bpfObjectDir, 'capture.o'), 'format', 'raw', '-j'], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    const types = (JSON.parse(raw) as { types: BtfType[] }).types;
    structs = new Map(types.filter((t) => t.kind === 'STRUCT' && t.name.startsWith('nm_')).map((t) => [t.name, t]));
  });

  it('declares every nm_ struct of the object', () => {
    expect([...structs.keys()].sort()).toEqual(Object.keys(layout.Structs).sort());
  });

  for (const [name, ts] of Object.entries(layout.Structs)) {
    it(`${name}: size and member offsets match the BTF`, () => {
      const c = structs.get(name);
      expect(c, `struct ${name} in BTF`).toBeDefined();
      expect(c?.size).toBe(ts.size);
      const cOffsets = Object.fromEntries((c?.members ?? []).map((m) => [m.name, m.bits_offset / 8]));
      expect(cOffsets).toEqual(ts.fields);
    });
  }

  it('round-trips addresses (IPv4 as IPv4-mapped, IPv6 compressed)', () => {
    for (const a of ['10.96.0.12', '0.0.0.0', '255.255.255.255', '::1', 'fd00:96::12', '2001:db8:0:1:2:3:4:5', '::', 'fe80::1:0:0:1']) {
      expect(layout.decodeAddr(layout.encodeAddr(a))).toBe(a);
    }
    expect(layout.encodeAddr('10.1.2.3').toString('hex')).toBe('00000000000000000000ffff0a010203');
    expect(layout.decodeAddr(layout.encodeAddr('::ffff:127.0.0.1'))).toBe('127.0.0.1');
    expect(layout.encodeAddr('[fd00::1]').toString('hex')).toBe('fd000000000000000000000000000001');
    expect(() => layout.encodeAddr('not-an-ip')).toThrow(/not an IP address/);
  });

  it('encodes ports in network order where the kernel compares them so, host order elsewhere', () => {
    const conn = layout.encodeConnKey({ netnsCookie: 0x0102030405060708n, address: '127.0.0.1', port: 0x1234 });
    expect(conn.subarray(layout.Structs.nm_conn_key.fields.port, layout.Structs.nm_conn_key.fields.port + 2).toString('hex')).toBe('1234');
    expect(layout.decodeConnKey(conn)).toEqual({ netnsCookie: 0x0102030405060708n, address: '127.0.0.1', port: 0x1234 });
    const pk = layout.encodePortKey({ netnsCookie: 7n, port: 15001, direction: layout.Direction.IN });
    expect(layout.decodePortKey(pk)).toEqual({ netnsCookie: 7n, port: 15001, direction: layout.Direction.IN });
    expect(layout.decodeSockAddr(layout.encodeSockAddr({ address: 'fd00::5', port: 443, family: 6 }))).toEqual({ address: 'fd00::5', port: 443, family: 6 });
    expect(layout.decodePending(layout.encodePending({ dst: { address: '10.0.0.1', port: 80, family: 4 }, netnsCookie: 3n }))).toEqual({
      dst: { address: '10.0.0.1', port: 80, family: 4 },
      netnsCookie: 3n,
    });
    expect(layout.decodeWorkload(layout.encodeWorkload({ flags: 3, outboundPort: 15001 }))).toEqual({ flags: 3, outboundPort: 15001 });
  });

  it('encodes the fast path keys as each socket sees itself (ports in host order) and round-trips permits', () => {
    const key = { netnsCookie: 0x1122334455667788n, local: { address: '127.0.0.1', port: 40_001 }, remote: { address: '127.0.0.1', port: 15001 } };
    const b = layout.encodeFastPathKey(key);
    expect(b.length).toBe(layout.Structs.nm_fp_key.size);
    const f = layout.Structs.nm_fp_key.fields;
    expect(b.subarray(f.local_addr, f.local_addr + 16).toString('hex')).toBe('00000000000000000000ffff7f000001');
    expect(b.readUInt32LE(f.local_port)).toBe(40_001);
    expect(layout.decodeFastPathKey(layout.encodeFastPathKey({ ...key, local: { address: '::ffff:10.0.0.1', port: 80 } })).local).toEqual({
      address: '10.0.0.1',
      port: 80,
    });
    const permit = {
      peer: { netnsCookie: 9n, local: { address: 'fd00::2', port: 9000 }, remote: { address: 'fd00::2', port: 50_000 } },
      bytes: 1n << 40n,
      flags: layout.FastPathFlags.REDIRECT,
    };
    const pb = layout.encodeFastPathPermit(permit);
    expect(pb.length).toBe(layout.Structs.nm_fp_permit.size);
    expect(layout.decodeFastPathPermit(pb)).toEqual(permit);
    expect(layout.encodeFastPathConfig(true).readUInt32LE(0)).toBe(1);
  });

  it('counts the netns cookie in LPM prefix lengths', () => {
    const v4 = layout.encodeCidrKey({ netnsCookie: 1n, cidr: '10.96.0.0/16' });
    expect(v4.readUInt32LE(0)).toBe(64 + 96 + 16);
    const v6 = layout.encodeCidrKey({ netnsCookie: 1n, cidr: 'fd00::/8' });
    expect(v6.readUInt32LE(0)).toBe(64 + 8);
    expect(layout.decodeCidrKey(v4)).toEqual({ netnsCookie: 1n, cidr: '10.96.0.0/16' });
    expect(layout.decodeCidrKey(v6)).toEqual({ netnsCookie: 1n, cidr: 'fd00::/8' });
    expect(() => layout.encodeCidrKey({ netnsCookie: 1n, cidr: '10.0.0.0/33' })).toThrow(/prefix length/);
  });
});
