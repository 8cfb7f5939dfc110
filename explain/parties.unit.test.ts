import { describe, expect, it } from 'vitest';
import { ExplainError } from '../control/api/explain';
import { splitPort } from './parties';

describe('TO[:PORT]', () => {
  it('splits names, IPv4 and bracketed IPv6 from their port; a bare IPv6 address has none', () => {
    expect(splitPort('backend.demo:80')).toEqual({ host: 'backend.demo', port: 80 });
    expect(splitPort('backend.demo')).toEqual({ host: 'backend.demo' });
    expect(splitPort('10.0.0.1:8080')).toEqual({ host: '10.0.0.1', port: 8080 });
    expect(splitPort('[fd00::1]:443')).toEqual({ host: 'fd00::1', port: 443 });
    expect(splitPort('fd00::1')).toEqual({ host: 'fd00::1' });
    expect(splitPort('demo/web:8080')).toEqual({ host: 'demo/web', port: 8080 });
  });

  it('refuses a port out of range and a malformed bracket', () => {
    expect(() => splitPort('a:70000')).toThrow(ExplainError);
    expect(() => splitPort('[fd00::1')).toThrow(/\[address\]:port/);
    expect(() => splitPort('[fd00::1]x')).toThrow(/\[address\]:port/);
  });
});
