import { describe, expect, it } from 'vitest';
import { formatAuthority, parseAuthority, targetOf } from './authority';

describe('HBONE authority', () => {
  it('parses IPv4 and bracketed IPv6 targets', () => {
    expect(parseAuthority('10.200.1.5:8080')).toEqual({ host: '10.200.1.5', port: 8080, family: 4 });
    expect(parseAuthority('[fd00::5]:443')).toEqual({ host: 'fd00::5', port: 443, family: 6 });
    expect(parseAuthority('127.0.0.1:65535')).toEqual({ host: '127.0.0.1', port: 65535, family: 4 });
  });

  it.each([
    ['', 'no port'],
    ['10.0.0.1', 'no port'],
    ['10.0.0.1:', 'not a port number'],
    ['10.0.0.1:0', 'outside 1..65535'],
    ['10.0.0.1:65536', 'outside 1..65535'],
    ['10.0.0.1:+80', 'not a port number'],
    ['10.0.0.1:8080x', 'not a port number'],
    ['example.com:80', 'not an IP address'],
    ['fd00::5:80', 'brackets'],
    ['[fd00::5]', 'not [ipv6]:port'],
    ['[10.0.0.1]:80', 'brackets'],
    ['[fd00::zz]:80', 'not an IP address'],
  ])('rejects %j (%s)', (authority, why) => {
    const r = parseAuthority(authority);
    expect('problem' in r ? r.problem : '').toContain(why);
  });

  it('formats what it parses', () => {
    expect(formatAuthority('fd00::5', 443)).toBe('[fd00::5]:443');
    expect(formatAuthority('10.0.0.1', 80)).toBe('10.0.0.1:80');
    const t = targetOf('[::1]:9');
    expect(formatAuthority(t.host, t.port)).toBe('[::1]:9');
    expect(() => targetOf('nope')).toThrow(/invalid HBONE authority/);
  });
});
