// The HBONE data path reads a peer's identity through common/identity's cache: the first
// connection between two workloads proves both chains (and reads each SPIFFE ID through
// @peculiar/x509), every later connection with the same certificates finds them proven — on the
// server (verifyTlsPeer on the session's socket) and on the client (checkServerIdentity) — and the
// server still learns the client's identity, the client still checks the server's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HboneClient } from '../../common/hbone/client';
import { peerCacheStats } from '../../common/identity/verify';
import { quietLogger, roundTrip, startMesh, type Mesh } from '../hbone/fixture';

describe('HBONE reads peer identities through the cache', () => {
  let mesh: Mesh;
  beforeAll(async () => {
    mesh = await startMesh();
  });
  afterAll(async () => {
    await mesh?.close();
  });

  it('a new connection with certificates seen before is a lookup on both ends, with the same identities', async () => {
    const tunnel = async (): Promise<void> => {
      // a client of its own each time: its own pool, so a new TLS connection and handshake
      const client = new HboneClient({ logger: quietLogger });
      try {
        const stream = await client.open(mesh.openOptions());
        expect((await roundTrip(stream, Buffer.from('hello'))).toString()).toBe('hello');
      } finally {
        client.destroy();
      }
    };
    // the client checks that the server is the expected identity (openOptions) on both
    await tunnel();
    const before = peerCacheStats();
    await tunnel();
    const after = peerCacheStats();
    expect(after.hits - before.hits).toBe(2); // the server's check of the client and the client's of the server
    expect(after.misses).toBe(before.misses);
    // the server saw the client's identity both times
    expect(mesh.requests.slice(-2).map((r) => r.peerSpiffeId)).toEqual([
      'spiffe://cluster.local/ns/ns-a/sa/sa-client',
      'spiffe://cluster.local/ns/ns-a/sa/sa-client',
    ]);
  });
});
