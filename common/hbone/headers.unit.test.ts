import { describe, expect, it } from 'vitest';
import { forwardedEndpoint, forwardedFor, requestHeaders, tunnelHeadersOf } from './headers';

describe('HBONE tunnel headers', () => {
  it('writes forwarded for= as RFC 7239 wants (a node with a port quoted, IPv6 bracketed and quoted)', () => {
    expect(forwardedFor('10.200.1.4')).toBe('for=10.200.1.4');
    expect(forwardedFor('fd00::4')).toBe('for="[fd00::4]"');
    expect(forwardedFor('10.200.1.2', 58320)).toBe('for="10.200.1.2:58320"');
    expect(forwardedFor('fd00::2', 443)).toBe('for="[fd00::2]:443"');
    expect(forwardedFor('10.200.1.2', 0)).toBe('for=10.200.1.2');
  });

  it('reads the client address and port back from forwarded (the first element, canonical address)', () => {
    expect(forwardedEndpoint('for=10.200.1.4')).toEqual({ address: '10.200.1.4' });
    expect(forwardedEndpoint('for="[fd00::4]"')).toEqual({ address: 'fd00::4' });
    expect(forwardedEndpoint('for="10.200.1.2:58320"')).toEqual({ address: '10.200.1.2', port: 58320 });
    expect(forwardedEndpoint('for="[FD00:0::2]:443"')).toEqual({ address: 'fd00::2', port: 443 });
    expect(forwardedEndpoint('proto=https;For="10.0.0.9:1234", for=10.0.0.10')).toEqual({ address: '10.0.0.9', port: 1234 });
    expect(forwardedEndpoint('by=1.2.3.4;for=10.0.0.9, for=10.0.0.10')).toEqual({ address: '10.0.0.9' });
    expect(forwardedEndpoint('for="::ffff:10.0.0.9"')).toEqual({ address: '10.0.0.9' });
    expect(forwardedEndpoint(forwardedFor('fd00::2', 8080))).toEqual({ address: 'fd00::2', port: 8080 });
  });

  it('refuses what is not an address or a port', () => {
    for (const h of [
      undefined,
      '',
      'for=unknown',
      'for=_hidden',
      'for="10.0.0.9:_p1"',
      'for="10.0.0.9:70000"',
      'for="[fd00::2"',
      'for="[fd00::2]x"',
      'by=10.0.0.1',
    ]) {
      expect(forwardedEndpoint(h), String(h)).toBeUndefined();
    }
  });

  it('puts only well-formed trace context on the request', () => {
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    expect(requestHeaders({ forwarded: 'for=1.2.3.4', traceparent: tp, baggage: 'a=b' })).toEqual({
      forwarded: 'for=1.2.3.4',
      traceparent: tp,
      baggage: 'a=b',
    });
    expect(requestHeaders({ traceparent: 'garbage' })).toEqual({});
    expect(requestHeaders(undefined)).toEqual({});
  });

  it('collects repeated headers a server received', () => {
    expect(tunnelHeadersOf({ forwarded: ['for=1.1.1.1', 'for=2.2.2.2'], baggage: 'x=y' })).toEqual({
      forwarded: 'for=1.1.1.1, for=2.2.2.2',
      traceparent: undefined,
      baggage: 'x=y',
    });
  });
});
