// Who may talk to whom: both ends verify the other's chain and SPIFFE identity.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TunnelConnectError } from '../../common/hbone/errors';
import { createTestCa } from '../../common/hbone/testing/pki';
import { roundTrip, startMesh, type Mesh } from './fixture';

describe('HBONE peer identity', () => {
  let mesh: Mesh;
  beforeAll(async () => {
    mesh = await startMesh();
  });
  afterAll(async () => {
    await mesh?.close();
  });

  it('refuses a client whose certificate comes from another trust domain CA', async () => {
    const other = await createTestCa('other.example');
    const stranger = await other.issue('ns-a', 'sa-client');
    const before = mesh.server.stats();
    const seen = mesh.requests.length;
    const err = await mesh.client.open(mesh.openOptions({ source: { certChain: stranger.certChain, key: stranger.key } })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TunnelConnectError);
    expect(mesh.requests.length).toBe(seen); // the handler never saw it
    expect(mesh.server.stats().tlsErrors).toBeGreaterThan(before.tlsErrors);
  });

  it('refuses a client that the same CA issued an ID in another trust domain', async () => {
    const forged = await mesh.ca.issue('ns-a', 'sa-client', { uriOverride: 'spiffe://evil.example/ns/ns-a/sa/sa-client' });
    const before = mesh.server.stats();
    const seen = mesh.requests.length;
    const err = await mesh.client.open(mesh.openOptions({ source: { certChain: forged.certChain, key: forged.key }, timeoutMs: 3000 })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TunnelConnectError);
    expect(mesh.requests.length).toBe(seen);
    expect(mesh.server.stats().connectionsRejected).toBe(before.connectionsRejected + 1);
  });

  it('refuses a server that presents an identity other than the expected one, naming both', async () => {
    const err = await mesh.client.open(mesh.openOptions({ expectedIdentity: 'spiffe://cluster.local/ns/ns-b/sa/sa-other' })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TunnelConnectError);
    const msg = (err as Error).message;
    expect(msg).toContain('spiffe://cluster.local/ns/ns-b/sa/sa-other'); // expected
    expect(msg).toContain('spiffe://cluster.local/ns/ns-b/sa/sa-server'); // seen
  });

  it('accepts a server that is one of a set of expected identities', async () => {
    const stream = await mesh.client.open(
      mesh.openOptions({ expectedIdentity: ['spiffe://cluster.local/ns/ns-b/sa/sa-other', 'spiffe://cluster.local/ns/ns-b/sa/sa-server'] }),
    );
    expect((await roundTrip(stream, Buffer.from('ok'))).toString()).toBe('ok');
  });

  it('refuses a server whose chain does not lead to the client trust bundle', async () => {
    const other = await createTestCa('cluster.local');
    const err = await mesh.client.open(mesh.openOptions({ trustBundle: other.bundle })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TunnelConnectError);
  });
});
