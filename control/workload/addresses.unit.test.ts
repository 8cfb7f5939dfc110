import { describe, expect, it } from 'vitest';
import { cidrOf, ipBytes, ipText } from './addresses';

describe('IP bytes', () => {
  it('round-trips IPv4 and IPv6', () => {
    for (const ip of ['10.200.1.5', '0.0.0.0', 'fd00::1', '::', '2001:db8:0:1::2', '1:2:3:4:5:6:7:8']) {
      expect(ipText(ipBytes(ip))).toBe(ip);
    }
    expect([...ipBytes('10.96.0.12')]).toEqual([10, 96, 0, 12]);
    expect(ipBytes('::ffff:10.0.0.1').toString('hex')).toBe('00000000000000000000ffff0a000001');
  });
  it('parses CIDRs and bare addresses', () => {
    expect(cidrOf('10.0.0.0/8')).toEqual({ address: Buffer.from([10, 0, 0, 0]), length: 8 });
    expect(cidrOf('fd00::1').length).toBe(128);
    expect(() => ipBytes('nope')).toThrow(/not an IP/);
  });
});
