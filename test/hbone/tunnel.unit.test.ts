// Bytes through the tunnel: client -> HBONE server -> TCP upstream and back, on loopback.
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forwardedFor } from '../../common/hbone/headers';
import { HboneServer, allow, deny } from '../../common/hbone/server';
import { connectUpstream } from '../../common/hbone/upstream';
import { digestReply, echo, quietLogger, roundTrip, sha256, startMesh, type Mesh } from './fixture';

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

describe('HBONE over IPv6', () => {
  let mesh: Mesh;
  beforeAll(async () => {
    mesh = await startMesh();
  });
  afterAll(async () => {
    await mesh?.close();
  });

  it('tunnels to an [ipv6]:port authority through a server on ::1', async () => {
    const app = createServer({ allowHalfOpen: true }, echo);
    await new Promise<void>((r) => app.listen(0, '::1', r));
    const appPort = (app.address() as AddressInfo).port;
    const seen: string[] = [];
    const server6 = new HboneServer({
      credentials: { certChain: mesh.serverCreds.certChain, key: mesh.serverCreds.key, trustBundle: mesh.ca.bundle },
      logger: quietLogger,
      handler: async (r) => {
        seen.push(`${r.target.family} ${r.target.host} ${r.remoteAddress.address} ${r.headers.forwarded}`);
        return allow(await connectUpstream(r.target));
      },
    });
    try {
      const ep = await server6.listen({ host: '::1', port: 0 });
      const stream = await mesh.client.open(
        mesh.openOptions({ destination: `[::1]:${ep.port}`, authority: `[::1]:${appPort}`, headers: { forwarded: forwardedFor('fd00::4') } }),
      );
      const data = randomBytes(100_000);
      expect(sha256(await roundTrip(stream, data))).toBe(sha256(data));
      expect(seen).toEqual(['6 ::1 ::1 for="[fd00::4]"']);
    } finally {
      await server6.close(100);
      await new Promise((r) => app.close(r));
    }
  });
});

describe('HBONE bytes sent before the answer (start)', () => {
  let mesh: Mesh;
  let received = 0;
  let allowNext = true;
  beforeAll(async () => {
    mesh = await startMesh({
      upstream: (s) => {
        s.on('data', (c: Buffer) => {
          received += c.length;
        });
        echo(s);
      },
      // the decision comes late, so the client's bytes are already waiting at the server
      decide: async (_r, connect) => {
        await new Promise((r) => setTimeout(r, 50));
        return allowNext ? connect() : deny(403, 'denied by test policy');
      },
    });
  });
  afterAll(async () => {
    await mesh?.close();
  });

  it('carries bytes written right behind the CONNECT intact once the server admits the tunnel', async () => {
    allowNext = true;
    const data = randomBytes(3 * 1024 * 1024 + 7);
    const { stream, response } = await mesh.client.start(mesh.openOptions());
    const back = roundTrip(stream, data);
    await response;
    expect(sha256(await back)).toBe(sha256(data));
  });

  it('never delivers them to the app when the server refuses the tunnel', async () => {
    allowNext = false;
    const before = received;
    const { stream, response } = await mesh.client.start(mesh.openOptions());
    stream.on('error', () => undefined);
    const status = new Promise<number>((r) => stream.once('response', (h) => r(Number(h[':status']))));
    stream.write(randomBytes(64 * 1024));
    await expect(response).rejects.toMatchObject({ status: 403 });
    expect(await status).toBe(403);
    await new Promise((r) => setTimeout(r, 100));
    expect(received).toBe(before);
  });
});
