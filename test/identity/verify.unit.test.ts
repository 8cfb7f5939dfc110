// Peer verification against certificates from the real CA, both as a pure function and inside a
// real node:tls mutual-TLS handshake on loopback.
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority } from '../../control/ca/authority';
import { createWorkloadCsr } from '../../common/identity/keys';
import { formatSpiffeId, identity, type Identity } from '../../common/identity/spiffe';
import { type SanName, selfSignedWithSans } from '../support/self-signed';
import {
  PeerVerificationError,
  clientVerification,
  peerCacheStats,
  serverVerification,
  spiffeIdOf,
  trustBundle,
  verifyPeerChain,
  verifyTlsPeer,
  type VerifiedPeer,
} from '../../common/identity/verify';
import { openTestCa, type TestCa } from '../support/control-plane';

const opened: TestCa[] = [];
let ca: CertificateAuthority;
let otherCa: CertificateAuthority; // another mesh, same trust domain name, different root
let foreignCa: CertificateAuthority; // trust domain other.td

interface Workload {
  key: string;
  chain: string[];
}
async function workload(authority: CertificateAuthority, id: Identity, ttlSeconds?: number): Promise<Workload> {
  const { csrPem, key } = await createWorkloadCsr(id);
  const issued = await authority.issue({ csrPem, identity: id, ttlSeconds });
  return { key: key.privateKeyPem, chain: [...issued.certChainPem] };
}

async function openCa(trustDomain: string): Promise<CertificateAuthority> {
  const testCa = await openTestCa('verify', trustDomain);
  opened.push(testCa);
  return testCa.ca;
}

beforeAll(async () => {
  ca = await openCa('cluster.local');
  otherCa = await openCa('cluster.local');
  foreignCa = await openCa('other.td');
});
afterAll(() => {
  for (const c of opened) c.remove();
});

const client = identity('default', 'sleep');
const server = identity('default', 'httpbin');

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof PeerVerificationError) return err.reason;
    throw err;
  }
  return 'accepted';
}

describe('verifyPeerChain', () => {
  it('accepts a chain from the trust bundle and returns the SPIFFE identity and expiry', async () => {
    const w = await workload(ca, client);
    const peer = verifyPeerChain(w.chain, ca.trustBundle);
    expect(peer.spiffeId).toBe('spiffe://cluster.local/ns/default/sa/sleep');
    expect(peer.identity).toEqual(client);
    expect(peer.notAfter.getTime()).toBe(new Date(new X509Certificate(w.chain[0] as string).validTo).getTime());
    expect(
      verifyPeerChain(
        w.chain.map((p) => new X509Certificate(p).raw),
        ca.trustBundle,
        { expected: [server, client] },
      ).identity,
    ).toEqual(client);
  });

  it('rejects an expired certificate and one not yet valid', async () => {
    const w = await workload(ca, client, 120);
    expect(reasonOf(() => verifyPeerChain(w.chain, ca.trustBundle, { now: new Date(Date.now() + 121_000) }))).toBe('expired');
    expect(reasonOf(() => verifyPeerChain(w.chain, ca.trustBundle, { now: new Date(Date.now() - 3_600_000) }))).toBe('not-yet-valid');
  });

  it('rejects a chain from another root, even with the same trust domain name', async () => {
    const w = await workload(otherCa, client);
    expect(reasonOf(() => verifyPeerChain(w.chain, ca.trustBundle))).toBe('untrusted');
  });

  it('rejects an identity from another trust domain', async () => {
    const w = await workload(foreignCa, identity('default', 'sleep', 'other.td'));
    // Trusting the foreign root does not make its identities part of cluster.local.
    const bundle = trustBundle('cluster.local', [...foreignCa.trustBundlePem]);
    expect(reasonOf(() => verifyPeerChain(w.chain, bundle))).toBe('wrong-trust-domain');
    expect(() => verifyPeerChain(w.chain, bundle)).toThrow(/spiffe:\/\/other.td\/ns\/default\/sa\/sleep is in trust domain 'other.td', not 'cluster.local'/);
  });

  it('rejects a peer that is not the expected destination identity', async () => {
    const w = await workload(ca, client);
    expect(() => verifyPeerChain(w.chain, ca.trustBundle, { expected: server })).toThrow(
      /the peer is spiffe:\/\/cluster.local\/ns\/default\/sa\/sleep, but spiffe:\/\/cluster.local\/ns\/default\/sa\/httpbin was expected/,
    );
  });

  it('rejects an empty chain and a CA certificate presented as a leaf', () => {
    expect(reasonOf(() => verifyPeerChain([], ca.trustBundle))).toBe('no-certificate');
    expect(reasonOf(() => verifyPeerChain([...ca.trustBundlePem], ca.trustBundle))).toBe('not-a-leaf');
  });
});

describe('proven chains are remembered', () => {
  it('per bundle and leaf: a second verification is a lookup, and the validity window, the expected identity and the bundle still decide', async () => {
    const w = await workload(ca, client, 120);
    const certs = w.chain.map((p) => new X509Certificate(p));
    const before = peerCacheStats();
    expect(verifyPeerChain(certs, ca.trustBundle).spiffeId).toBe('spiffe://cluster.local/ns/default/sa/sleep');
    expect(verifyPeerChain(certs, ca.trustBundle, { expected: client }).identity).toEqual(client);
    expect(peerCacheStats()).toEqual({ hits: before.hits + 1, misses: before.misses + 1 });
    expect(reasonOf(() => verifyPeerChain(certs, ca.trustBundle, { expected: server }))).toBe('unexpected-identity');
    expect(reasonOf(() => verifyPeerChain(certs, ca.trustBundle, { now: new Date(Date.now() + 121_000) }))).toBe('expired');
    expect(reasonOf(() => verifyPeerChain(certs, ca.trustBundle, { now: new Date(Date.now() - 3_600_000) }))).toBe('not-yet-valid');
    // another mesh's bundle with the same trust domain name learns nothing from this one's
    expect(reasonOf(() => verifyPeerChain(certs, otherCa.trustBundle))).toBe('untrusted');
  });
});

describe('spiffeIdOf (the URI SANs through @peculiar/x509)', () => {
  const certWith = async (names: SanName[]): Promise<X509Certificate> => new X509Certificate(Buffer.from((await selfSignedWithSans(names)).rawData));

  it('reads the one URI SAN among other names, and refuses none or two', async () => {
    const id = 'spiffe://cluster.local/ns/shop/sa/cart';
    expect(
      spiffeIdOf(
        await certWith([
          { type: 'dns', value: 'cart.shop.svc' },
          { type: 'url', value: id },
        ]),
      ),
    ).toBe(id);
    const dnsOnly = await certWith([{ type: 'dns', value: 'cart.shop.svc' }]);
    expect(() => spiffeIdOf(dnsOnly)).toThrow(/no URI SAN/);
    const none = await certWith([]);
    expect(() => spiffeIdOf(none)).toThrow(/no URI SAN/);
    const two = await certWith([
      { type: 'url', value: id },
      { type: 'url', value: 'spiffe://cluster.local/ns/shop/sa/admin' },
    ]);
    expect(() => spiffeIdOf(two)).toThrow(/has 2 URI SANs/);
    // a URI holding what node:crypto's display string would use as a separator is one value, never two
    const sneaky = await certWith([{ type: 'url', value: `${id}, URI:spiffe://cluster.local/ns/shop/sa/admin` }]);
    expect(spiffeIdOf(sneaky)).toBe(`${id}, URI:spiffe://cluster.local/ns/shop/sa/admin`);
  });
});

describe('mutual TLS with the node:tls helpers', () => {
  let serverCert: Workload;
  let servers: tls.Server[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    servers = [];
  });

  beforeAll(async () => {
    serverCert = await workload(ca, server);
  });

  /** Starts a TLS 1.3 server on 127.0.0.1:0 that verifies clients and records who they were. */
  async function startServer(): Promise<{ port: number; peers: Array<VerifiedPeer | string> }> {
    const peers: Array<VerifiedPeer | string> = [];
    const srv = tls.createServer(
      { key: serverCert.key, cert: serverCert.chain.join(''), minVersion: 'TLSv1.3', ALPNProtocols: ['h2'], ...serverVerification(ca.trustBundle) },
      (sock) => {
        try {
          const peer = verifyTlsPeer(sock, ca.trustBundle, { role: 'client' });
          peers.push(peer);
          sock.end('hello ' + formatSpiffeId(peer.identity));
        } catch (err) {
          peers.push((err as Error).message);
          sock.destroy();
        }
      },
    );
    srv.on('tlsClientError', (err) => peers.push(`tls: ${err.message}`));
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    return { port: (srv.address() as AddressInfo).port, peers };
  }

  function connect(port: number, who: Workload, expected: Identity | undefined, bundleCa = ca): Promise<string> {
    return new Promise((resolve, reject) => {
      const sock = tls.connect({
        host: '127.0.0.1',
        port,
        key: who.key,
        cert: who.chain.join(''),
        minVersion: 'TLSv1.3',
        ALPNProtocols: ['h2'],
        ...clientVerification(bundleCa.trustBundle, expected),
      });
      let data = '';
      sock.setEncoding('utf8');
      sock.on('data', (d: string) => (data += d));
      sock.on('end', () => resolve(data));
      sock.on('error', reject);
    });
  }

  it('both sides learn and check each other’s SPIFFE identity', async () => {
    const { port, peers } = await startServer();
    const me = await workload(ca, client);
    await expect(connect(port, me, server)).resolves.toBe('hello spiffe://cluster.local/ns/default/sa/sleep');
    expect((peers[0] as VerifiedPeer).spiffeId).toBe('spiffe://cluster.local/ns/default/sa/sleep');
  });

  it('a second handshake with the same certificates is a lookup on both sides (server verifyTlsPeer, client checkServerIdentity)', async () => {
    const { port, peers } = await startServer();
    const me = await workload(ca, client);
    await expect(connect(port, me, server)).resolves.toBe('hello spiffe://cluster.local/ns/default/sa/sleep');
    const before = peerCacheStats();
    await expect(connect(port, me, server)).resolves.toBe('hello spiffe://cluster.local/ns/default/sa/sleep');
    expect(peerCacheStats()).toEqual({ hits: before.hits + 2, misses: before.misses });
    expect(peers.map((p) => (typeof p === 'string' ? p : p.spiffeId))).toEqual([
      'spiffe://cluster.local/ns/default/sa/sleep',
      'spiffe://cluster.local/ns/default/sa/sleep',
    ]);
    // the expected identity is still checked on a remembered server certificate
    await expect(connect(port, me, identity('default', 'reviews'))).rejects.toThrow(/was expected/);
  });

  it('the client refuses a server that is not the expected identity', async () => {
    const { port } = await startServer();
    const me = await workload(ca, client);
    await expect(connect(port, me, identity('default', 'reviews'))).rejects.toThrow(/was expected/);
  });

  it('the server refuses a client whose certificate comes from another root', async () => {
    const { port, peers } = await startServer();
    const stranger = await workload(otherCa, client);
    // TLS 1.3: the client may finish its side before the server rejects its certificate, so it
    // sees either an alert or a connection closed without the server's greeting.
    const outcome = await connect(port, stranger, server).catch((err: Error) => `error: ${err.message}`);
    expect(outcome).not.toMatch(/hello/);
    await new Promise((r) => setTimeout(r, 50));
    expect(peers.some((p) => typeof p === 'string' && p.startsWith('tls: '))).toBe(true);
    expect(peers.some((p) => typeof p !== 'string')).toBe(false);
  });
});
