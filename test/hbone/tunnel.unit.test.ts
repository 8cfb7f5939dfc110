// Bytes through the tunnel: client -> HBONE server -> TCP upstream and back, on loopback.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestReply, roundTrip, sha256, startMesh, type Mesh } from './fixture';

describe('HBONE tunnel carries bytes intact', () => {
  let mesh: Mesh;
  beforeAll(async () => {
    mesh = await startMesh();
  });
  afterAll(async () => {
    await mesh?.close();
  });

  for (const size of [0, 1, 64 * 1024, 16 * 1024 * 1024, 64 * 1024 * 1024]) {
    it(`echoes ${size} bytes unchanged (sha256)`, async () => {
      const data = randomBytes(size);
      const stream = await mesh.client.open(mesh.openOptions());
      const back = await roundTrip(stream, data);
      expect(back.length).toBe(size);
      expect(sha256(back)).toBe(sha256(data));
    }, 60_000);
  }

  it('tells the server the client identity, the authority and the tunnel headers', async () => {
    const before = mesh.requests.length;
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const stream = await mesh.client.open(mesh.openOptions({ headers: { forwarded: 'for=10.200.1.4', traceparent, baggage: 'k=v' } }));
    await roundTrip(stream, Buffer.from('hi'));
    const r = mesh.requests[before];
    expect(r?.peerSpiffeId).toBe('spiffe://cluster.local/ns/ns-a/sa/sa-client');
    expect(r?.peerIdentity).toEqual({ trustDomain: 'cluster.local', namespace: 'ns-a', serviceAccount: 'sa-client' });
    expect(r?.authority).toBe(`127.0.0.1:${mesh.upstreamPort}`);
    expect(r?.target).toEqual({ host: '127.0.0.1', port: mesh.upstreamPort, family: 4 });
    expect(r?.headers).toEqual({ forwarded: 'for=10.200.1.4', traceparent, baggage: 'k=v' });
    expect(r?.remoteAddress.address).toBe('127.0.0.1');
    expect(r?.localAddress.port).toBe(Number(mesh.destination.split(':')[1]));
  });
});

describe('HBONE half-close', () => {
  let mesh: Mesh;
  beforeAll(async () => {
    mesh = await startMesh({ upstream: digestReply });
  });
  afterAll(async () => {
    await mesh?.close();
  });

  it('delivers the end of the client stream to the upstream, which still answers after it', async () => {
    const data = randomBytes(300_000);
    const stream = await mesh.client.open(mesh.openOptions());
    const reply = (await roundTrip(stream, data)).toString();
    expect(reply).toBe(`${data.length} ${sha256(data)}`);
  });
});
