import { describe, expect, it } from 'vitest';
import { forwardedClient, forwardedFor, requestHeaders, tunnelHeadersOf } from './headers';

describe('HBONE tunnel headers', () => {
  it('writes forwarded for= as RFC 7239 wants (IPv6 quoted and bracketed)', () => {
    expect(forwardedFor('10.200.1.4')).toBe('for=10.200.1.4');
    expect(forwardedFor('fd00::4')).toBe('for="[fd00::4]"');
  });

  it('reads the client address back from forwarded', () => {
    expect(forwardedClient('for=10.200.1.4')).toBe('10.200.1.4');
    expect(forwardedClient('for="[fd00::4]"')).toBe('fd00::4');
    expect(forwardedClient('proto=https;For="10.0.0.9:1234"')).toBeUndefined(); // ports are not addresses
    expect(forwardedClient('by=1.2.3.4;for=10.0.0.9, for=10.0.0.10')).toBe('10.0.0.9');
    expect(forwardedClient('for=unknown')).toBeUndefined();
    expect(forwardedClient(undefined)).toBeUndefined();
  });

  it('puts only well-formed trace context on the request', () => {
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    expect(requestHeaders({ forwarded: 'for=1.2.3.4', traceparent: tp, baggage: 'a=b' })).toEqual({ forwarded: 'for=1.2.3.4', traceparent: tp, baggage: 'a=b' });
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
