import { describe, expect, it } from 'vitest';
import { formatListen, parseListen } from './listen';

describe('parseListen', () => {
  it('reads host:port forms', () => {
    expect(parseListen('127.0.0.1:15014')).toEqual({ host: '127.0.0.1', port: 15014 });
    expect(parseListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseListen(':15014')).toEqual({ host: '0.0.0.0', port: 15014 });
    expect(parseListen('15014')).toEqual({ host: '127.0.0.1', port: 15014 });
    expect(formatListen({ host: '::1', port: 1 })).toBe('[::1]:1');
  });
  it('explains what is wrong', () => {
    expect(() => parseListen('localhost')).toThrow('invalid listen address "localhost": expected HOST:PORT');
    expect(() => parseListen('1.2.3.4:70000')).toThrow(/invalid listen address/);
  });
});
