import { describe, expect, it } from 'vitest';
import { forwardedEndpoint, forwardedForEndpoint, streamSource } from './forwarded';

describe('forwarded: the app connection an HBONE stream stands for', () => {
  it('writes the client address with its port (RFC 7239 node-port, quoted)', () => {
    expect(forwardedForEndpoint('10.200.1.2', 58320)).toBe('for="10.200.1.2:58320"');
    expect(forwardedForEndpoint('fd00::2', 443)).toBe('for="[fd00::2]:443"');
    expect(forwardedForEndpoint('10.200.1.2', 0)).toBe('for=10.200.1.2');
  });

  it('reads address and port back, also without a port, and the first element only', () => {
    expect(forwardedEndpoint('for="10.200.1.2:58320"')).toEqual({ address: '10.200.1.2', port: 58320 });
    expect(forwardedEndpoint('for="[FD00:0::2]:443"')).toEqual({ address: 'fd00::2', port: 443 });
    expect(forwardedEndpoint('for=10.200.1.2')).toEqual({ address: '10.200.1.2' });
    expect(forwardedEndpoint('for="[fd00::2]"')).toEqual({ address: 'fd00::2' });
    expect(forwardedEndpoint('proto=https;For="10.0.0.9:1234", for=10.0.0.10')).toEqual({ address: '10.0.0.9', port: 1234 });
    expect(forwardedEndpoint('for="::ffff:10.0.0.9"')).toEqual({ address: '10.0.0.9' });
  });

  it('refuses what is not an address or a port', () => {
    for (const h of [undefined, '', 'for=unknown', 'for=_hidden', 'for="10.0.0.9:_p1"', 'for="10.0.0.9:70000"', 'for="[fd00::2"', 'for="[fd00::2]x"', 'by=10.0.0.1']) {
      expect(forwardedEndpoint(h), String(h)).toBeUndefined();
    }
  });

  it('names the app connection when the header speaks for the tunnel peer, else the peer', () => {
    const peer = { address: '10.200.1.2', port: 41000 };
    expect(streamSource(peer, 'for="10.200.1.2:58320"')).toEqual({ address: '10.200.1.2', port: 58320 });
    // a waypoint (or anyone) forwarding for another address: the verified peer stays the source
    expect(streamSource({ address: '10.200.1.201', port: 35934 }, 'for="10.200.1.2:58320"')).toEqual({ address: '10.200.1.201', port: 35934 });
    expect(streamSource(peer, 'for=10.200.1.2')).toEqual(peer);
    expect(streamSource(peer, undefined)).toEqual(peer);
  });
});
