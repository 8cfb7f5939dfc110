// A peer cannot hold an HBONE connection without using it: a TCP connection that never finishes
// the TLS handshake and a verified HTTP/2 connection that has no open stream are both closed
// after their timeouts and counted; a connection with an open (quiet) tunnel stays up.
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, meshClientTls, startMesh, type Mesh } from './fixture';

const closed = (s: Socket | ClientHttp2Session): Promise<number> => {
  const t0 = performance.now();
  return new Promise((resolve) => {
    s.on('error', () => undefined);
    s.once('close', () => resolve(performance.now() - t0));
  });
};

describe('HBONE server timeouts', () => {
  // The handshake timeout is checked on its own server: 300 ms is shorter than a TLS handshake
  // takes when the unit tier loads both cores, and it would then close the connections the idle
  // tests below hold (counted as handshake timeouts, never reaching the idle timeout).
  let handshakeMesh: Mesh;
  let mesh: Mesh;
  let tlsBase: ConnectionOptions;
  // What the node proxy's nodemesh_listener_timeouts_total{listener="hbone"} counts (onTimeout).
  const told = { handshake: 0, idle: 0, ping: 0 };
  beforeAll(async () => {
    handshakeMesh = await startMesh({ server: { handshakeTimeoutMs: 300, onTimeout: (kind) => void told[kind]++ } });
    mesh = await startMesh({ ca: handshakeMesh.ca, server: { idleTimeoutMs: 1_000, onTimeout: (kind) => void told[kind]++ } });
    tlsBase = meshClientTls(mesh);
  });
  afterAll(async () => {
    await handshakeMesh?.close();
    await mesh?.close();
  });

  it('closes 50 TCP connections that never start TLS after the handshake timeout, and counts them', async () => {
    const before = handshakeMesh.server.stats().handshakeTimeouts;
    const [host, port] = handshakeMesh.destination.split(':');
    const socks = Array.from({ length: 50 }, () => tcpConnect({ host, port: Number(port) }));
    const waited = await Promise.all(socks.map(closed));
    expect(Math.min(...waited)).toBeGreaterThanOrEqual(250);
    expect(Math.max(...waited)).toBeLessThan(3_000);
    expect(handshakeMesh.server.stats().handshakeTimeouts - before).toBe(50);
    expect(told.handshake).toBe(handshakeMesh.server.stats().handshakeTimeouts);
  });

  it('closes verified connections that send nothing (no HTTP/2 preface), and counts them', async () => {
    const before = mesh.server.stats().idleTimeouts;
    // each connection's time from its own handshake to its close
    const waited = await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          new Promise<number>((resolve) => {
            const s = tlsConnect(tlsBase, () => void closed(s).then(resolve));
            s.on('error', () => undefined);
            s.resume();
          }),
      ),
    );
    // (no lower bound: the client's handshake callback can run long after the server's timer
    // started when the unit tier loads both cores; the count below says which timer closed them)
    expect(Math.max(...waited)).toBeLessThan(6_000);
    expect(mesh.server.stats().idleTimeouts - before).toBe(20);
    expect(told.idle).toBe(mesh.server.stats().idleTimeouts);
    expect(await eventually(() => mesh.server.stats().connectionsActive === 0)).toBe(true);
  });

  it('closes an HTTP/2 session once it has had no stream for the idle timeout', async () => {
    const s = h2connect(`https://${mesh.destination}`, { createConnection: () => tlsConnect(tlsBase) });
    const gone = closed(s);
    // one stream keeps it busy for ~1.5 s (longer than the idle timeout): not closed meanwhile
    const req = s.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${mesh.upstreamPort}` }, { endStream: false });
    req.on('error', () => undefined);
    req.resume();
    await new Promise((r) => setTimeout(r, 1_500));
    expect(s.closed || s.destroyed).toBe(false);
    req.end();
    await new Promise<void>((r) => req.once('close', () => r()));
    const afterStream = await gone;
    expect(afterStream).toBeGreaterThanOrEqual(1_500 + 500);
  });

  it('still opens tunnels', async () => {
    const stream = await mesh.client.open(mesh.openOptions());
    stream.end('ok');
    const got: Buffer[] = [];
    for await (const c of stream) got.push(c as Buffer);
    expect(Buffer.concat(got).toString()).toBe('ok');
  });
});
