import { describe, expect, it } from 'vitest';
import { cidrKey, connKey, decodeSockaddr, portKey, workloadValue } from './codec';
import { DIR_OUT, parseCidr } from './entries';

describe('map codecs', () => {
  it('lays out keys as maps.h does (little-endian host, network-order ports where the C says so)', () => {
    expect(workloadValue(3, 15001).toString('hex')).toBe('03000000993a0000');
    expect(portKey(0x0102n, { port: 5432, direction: DIR_OUT }).toString('hex')).toBe('0201000000000000' + '3815' + '01' + '0000000000');
    const k = cidrKey(1n, parseCidr('10.96.0.0/16'));
    expect(k.readUInt32LE(0)).toBe(64 + 96 + 16);
    expect(k.subarray(4, 12).toString('hex')).toBe('0100000000000000');
    expect(k.subarray(12).toString('hex')).toBe('00000000000000000000ffff0a600000');
    const c = connKey(7n, { address: '127.0.0.1', port: 40000 });
    expect(c).toHaveLength(32);
    expect(c.subarray(8, 24).toString('hex')).toBe('00000000000000000000ffff7f000001');
    expect(c.subarray(24, 26).toString('hex')).toBe('9c40');
  });

  it('decodes original destinations of both families', () => {
    const v4 = Buffer.alloc(20);
    Buffer.from('00000000000000000000ffff0a60000c', 'hex').copy(v4);
    v4.writeUInt16BE(8080, 16);
    v4.writeUInt16LE(2, 18);
    expect(decodeSockaddr(v4)).toEqual({ address: '10.96.0.12', port: 8080, family: 2 });
    const v6 = Buffer.alloc(20);
    Buffer.from('fd000000000000000000000000000012', 'hex').copy(v6);
    v6.writeUInt16BE(443, 16);
    v6.writeUInt16LE(10, 18);
    expect(decodeSockaddr(v6)).toEqual({ address: 'fd00::12', port: 443, family: 10 });
  });
});
