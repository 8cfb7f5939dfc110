// One HBONE server behind several listeners (the node proxy opens one per workload netns and
// shares a server, and so its TLS context, between the workloads of one identity): each
// connection is served with the server's identity, the handler learns which listener it came
// through, and closing one listener's connections leaves the others' tunnels alone.
import { createServer, type AddressInfo, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, roundTrip, startMesh, type Mesh } from './fixture';

describe('HBONE server shared by several listeners', () => {
  let mesh: Mesh;
  const listeners: Record<string, { server: Server; destination: string }> = {};
  beforeAll(async () => {
    mesh = await startMesh();
    for (const name of ['workload-a', 'workload-b']) {
      const server = createServer({ noDelay: true }, (socket) => mesh.server.serveConnection(socket, name));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      listeners[name] = { server, destination: `127.0.0.1:${(server.address() as AddressInfo).port}` };
    }
  });
  afterAll(async () => {
    for (const l of Object.values(listeners)) l.server.close();
    await mesh?.close();
  });

  it("serves each listener's connections with the server's identity and names the listener to the handler", async () => {
    for (const name of ['workload-a', 'workload-b']) {
      const seen = mesh.requests.length;
      // the client refuses a server that does not present the expected SPIFFE ID
      const stream = await mesh.client.open(mesh.openOptions({ destination: listeners[name]!.destination, sourceAddress: name }));
      expect((await roundTrip(stream, Buffer.from(`via ${name}`))).toString()).toBe(`via ${name}`);
      expect(mesh.requests.slice(seen).map((r) => r.listener)).toEqual([name]);
      expect(mesh.requests.at(-1)?.peerSpiffeId).toBe(mesh.clientCreds.spiffeId);
    }
    // its own listener's connections name none
    const stream = await mesh.client.open(mesh.openOptions({ sourceAddress: 'own' }));
    await roundTrip(stream, Buffer.from('own'));
    expect(mesh.requests.at(-1)?.listener).toBeUndefined();
  });

  it("closeListener ends that listener's connections, open tunnels included, and no other", async () => {
    const a = await mesh.client.open(mesh.openOptions({ destination: listeners['workload-a']!.destination, sourceAddress: 'close-a' }));
    const b = await mesh.client.open(mesh.openOptions({ destination: listeners['workload-b']!.destination, sourceAddress: 'close-b' }));
    a.on('error', () => undefined);
    let aClosed = false;
    a.once('close', () => {
      aClosed = true;
    });
    a.write('x'); // the tunnel is in use: only the grace period ends it
    const t0 = performance.now();
    await mesh.server.closeListener('workload-a', 200);
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect(await eventually(() => aClosed, 2_000)).toBe(true);
    // b's connection was not touched: its tunnel still carries bytes
    expect((await roundTrip(b, Buffer.from('still here'))).toString()).toBe('still here');
    // and a listener with no connections closes at once
    await mesh.server.closeListener('nobody', 10_000);
  });

  it('close() ends the connections handed over too, within its grace period', async () => {
    const own = await startMesh({ ca: mesh.ca });
    const listener = createServer((socket) => own.server.serveConnection(socket, 'workload-c'));
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    try {
      const held = await own.client.open(own.openOptions({ destination: `127.0.0.1:${(listener.address() as AddressInfo).port}` }));
      held.on('error', () => undefined);
      let closed = false;
      held.once('close', () => {
        closed = true;
      });
      held.write('x');
      const t0 = performance.now();
      await own.server.close(200);
      expect(performance.now() - t0).toBeLessThan(2_000);
      expect(await eventually(() => closed, 2_000)).toBe(true);
    } finally {
      listener.close();
      await own.close();
    }
  });
});
