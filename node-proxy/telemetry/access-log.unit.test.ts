import { describe, expect, it } from 'vitest';
import { accessLogFields, type ConnectionOutcome } from './access-log';
import type { ConnectionRecord } from './labels';

const outcome: ConnectionOutcome = { requestBytes: 10, responseBytes: 20, durationMs: 1.5, responseFlags: '-' };
const base: ConnectionRecord = {
  reporter: 'destination',
  source: {
    workload: { name: 'web-1', namespace: 'shop', canonicalName: 'web', canonicalRevision: 'v1' },
    identity: 'spiffe://cluster.local/ns/shop/sa/web',
    address: '10.200.1.2',
    port: 58320,
  },
  destination: {
    workload: { name: 'db-0', namespace: 'shop', canonicalName: 'db', canonicalRevision: 'v1' },
    identity: 'spiffe://cluster.local/ns/shop/sa/db',
    address: '10.200.1.3',
    port: 5432,
  },
  mtls: true,
};

describe('access log fields', () => {
  it('says HBONE for the tunnel, with the app connection as source and the tunnel peer apart', () => {
    const f = accessLogFields({ ...base, tunnelPeer: { address: '10.200.1.2', port: 41000 } }, outcome);
    expect(f).toMatchObject({
      protocol: 'HBONE',
      connection_security_policy: 'mutual_tls',
      src: { addr: '10.200.1.2:58320' },
      tunnel_peer: '10.200.1.2:41000',
    });
  });

  it('says same-node for the same-node path (no tunnel, no TLS), still mutual_tls as a security policy', () => {
    const f = accessLogFields({ ...base, sameNode: true }, outcome);
    expect(f).toMatchObject({ protocol: 'same-node', connection_security_policy: 'mutual_tls' });
    expect(f).not.toHaveProperty('tunnel_peer');
  });

  it('says TCP for plaintext, with IPv6 addresses bracketed', () => {
    const f = accessLogFields({ ...base, mtls: false, source: { address: 'fd00::9', port: 1234 } }, outcome);
    expect(f).toMatchObject({ protocol: 'TCP', connection_security_policy: 'none', src: { addr: '[fd00::9]:1234' } });
  });
});
