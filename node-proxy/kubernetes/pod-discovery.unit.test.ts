import { describe, expect, it } from 'vitest';
import { parseLocalAddresses } from './pod-discovery';

const FIB = `Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.200.1.0/24 2 0 2
        |-- 10.200.1.0
           /24 link UNICAST
        |-- 10.200.1.100
           /32 host LOCAL
        |-- 10.200.1.255
           /32 link BROADCAST
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.1
           /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 10.200.1.100
        /32 host LOCAL
`;
const INET6 = `fd000000000000000000000000000002 04 40 00 82     eth0
00000000000000000000000000000001 01 80 10 80       lo
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
`;

describe('a netns local addresses from /proc/<pid>/net', () => {
  it('takes IPv4 host LOCAL leaves and global IPv6 addresses, never loopback, link-local or broadcast', () => {
    expect(parseLocalAddresses(FIB, INET6).sort()).toEqual(['10.200.1.100', 'fd00::2']);
  });
  it('a netns with only loopback has none', () => {
    expect(parseLocalAddresses('Main:\n  |-- 127.0.0.1\n     /32 host LOCAL\n', '')).toEqual([]);
  });
});
