import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { canonicalIp, ipBytes, ipText, ipToBytes } from './ip';

describe('IP codec', () => {
  it('round-trips IPv4 and IPv6 in canonical text', () => {
    for (const ip of ['10.200.1.5', '0.0.0.0', 'fd00::1', '::', '2001:db8:0:1::2', '1:2:3:4:5:6:7:8', '2001:db8::1:0:0:1']) {
      expect(ipText(ipBytes(ip))).toBe(ip);
    }
  });

  it('writes IPv4 as 4 bytes and IPv6 (also with an IPv4 tail) as 16', () => {
    expect([...ipBytes('10.96.0.12')]).toEqual([10, 96, 0, 12]);
    expect(ipBytes('::ffff:10.0.0.1').toString('hex')).toBe('00000000000000000000ffff0a000001');
    expect(ipBytes('FD00:0:0::0001').toString('hex')).toBe('fd000000000000000000000000000001');
  });

  it('compresses the longest zero run only, and never a single zero group (RFC 5952)', () => {
    expect(ipText(ipBytes('2001:db8:0:0:1:0:0:0'))).toBe('2001:db8:0:0:1::');
    expect(ipText(ipBytes('2001:db8:0:1:1:1:1:1'))).toBe('2001:db8:0:1:1:1:1:1');
    expect(ipText(ipBytes('fd00:0000:0000:0000:0000:0000:0000:0001'))).toBe('fd00::1');
  });

  it('refuses what is not an address', () => {
    expect(() => ipBytes('nope')).toThrow(/not an IP address: nope/);
    expect(() => ipBytes('10.0.0.256')).toThrow(/not an IP/);
    expect(() => ipText(new Uint8Array(5))).toThrow(/4 or 16 bytes, got 5/);
  });
});

describe('IPv4 text (the parser of every connection)', () => {
  // the reference: what counted as an address before the dotted-quad path (node:net's isIP, ipaddr.js)
  const reference = (t: string): number[] | undefined => (isIP(t) === 4 ? ipaddr.parse(t).toByteArray() : undefined);
  const bytesOf = (t: string): number[] | undefined => {
    const b = ipToBytes(t);
    return b && b.length === 4 ? [...b] : undefined;
  };

  it('accepts and refuses exactly what node:net calls IPv4', () => {
    const cases = [
      '1.2.3.4',
      '0.0.0.0',
      '255.255.255.255',
      '10.200.1.12',
      '01.2.3.4',
      '1.2.3.04',
      '256.1.1.1',
      '1.2.3',
      '1.2.3.4.5',
      '1..2.3',
      ' 1.2.3.4',
      '1.2.3.4 ',
      '1.2.3.',
      '.1.2.3',
      '1.2.3.4444',
      '1.2.3.-1',
      '1.2.3.1e1',
      '',
    ];
    for (const t of cases) expect(bytesOf(t), t).toEqual(reference(t));
    let seed = 7;
    const rnd = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
    for (let i = 0; i < 20_000; i++) {
      const t = Array.from({ length: 1 + rnd(15) }, () => '0123456789..'[rnd(12)]).join('');
      expect(bytesOf(t), t).toEqual(reference(t));
    }
  });

  it('writes 4 bytes as a dotted quad', () => {
    expect(ipText(Uint8Array.from([10, 0, 255, 7]))).toBe('10.0.255.7');
    expect(canonicalIp('::ffff:10.0.0.1')).toBe('10.0.0.1');
  });
});

describe('IPv6 zones', () => {
  it('ignores a zone id instead of parsing it as address bits', () => {
    expect(canonicalIp('fe80::1%eth0')).toBe('fe80::1');
    expect(canonicalIp('fe80::1%eth010.200.1.565536')).toBe('fe80::1'); // threw RangeError before
    expect(ipToBytes('fe80::1%eth0')).toEqual(ipBytes('fe80::1'));
  });
});
