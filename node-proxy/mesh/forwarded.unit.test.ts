import { describe, expect, it } from 'vitest';
import { streamSource } from './forwarded';

describe('forwarded: the app connection an HBONE stream stands for', () => {
  it('names the app connection when the header speaks for the tunnel peer, else the peer', () => {
    const peer = { address: '10.200.1.2', port: 41000 };
    expect(streamSource(peer, 'for="10.200.1.2:58320"')).toEqual({ address: '10.200.1.2', port: 58320 });
    // a waypoint (or anyone) forwarding for another address: the verified peer stays the source
    expect(streamSource({ address: '10.200.1.201', port: 35934 }, 'for="10.200.1.2:58320"')).toEqual({ address: '10.200.1.201', port: 35934 });
    expect(streamSource(peer, 'for=10.200.1.2')).toEqual(peer);
    expect(streamSource(peer, undefined)).toEqual(peer);
  });
});
