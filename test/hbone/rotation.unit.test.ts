// Certificates rotate under traffic: open tunnels continue on their connections, new tunnels use
// the new certificates, and no stream is dropped.
import { randomBytes } from 'node:crypto';
import type { ClientHttp2Stream } from 'node:http2';
import { connect as tcpConnect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestReply, eventually, roundTrip, sha256, startMesh, type Mesh } from './fixture';

/**
 * Writes the first half of `chunks` with a pause between them, waits for `gate`, writes the rest,
 * ends, and resolves with the upstream's reply.
 */
function trickle(stream: ClientHttp2Stream, chunks: Buffer[], pauseMs: number, gate: Promise<void>): Promise<string> {
  return new Promise((resolve, reject) => {
    let reply = '';
    stream.on('data', (c: Buffer) => (reply += c.toString()));
    stream.once('end', () => resolve(reply));
    stream.once('error', reject);
    let i = 0;
    const next = (): void => {
      if (i === chunks.length) {
        stream.end();
        return;
      }
      stream.write(chunks[i++]);
      if (i === Math.floor(chunks.length / 2)) void gate.then(() => setTimeout(next, pauseMs));
      else setTimeout(next, pauseMs);
    };
    next();
  });
}

// On Node 20 a second getPeerX509Certificate() on an HTTP/2 session's socket returned undefined,
// so the serial is read once per session.
const serials = new WeakMap<object, string>();
function peerSerial(stream: ClientHttp2Stream): string {
  const session = stream.session;
  if (!session) return '';
  let serial = serials.get(session);
  if (serial === undefined) {
    serial = ((session.socket as TLSSocket).getPeerX509Certificate()?.serialNumber ?? '').toLowerCase();
    serials.set(session, serial);
  }
  return serial;
}

describe('HBONE certificate rotation', () => {
  let mesh: Mesh;
  beforeAll(async () => {
    mesh = await startMesh({ upstream: digestReply });
  });
  afterAll(async () => {
    await mesh?.close();
  });

  it('drops no stream when both ends rotate their certificates mid-transfer', async () => {
    const chunkSets = Array.from({ length: 20 }, () => Array.from({ length: 15 }, () => randomBytes(32 * 1024)));
    const oldStreams = await Promise.all(chunkSets.map(() => mesh.client.open(mesh.openOptions())));
    let rotated!: () => void;
    const rotation = new Promise<void>((r) => (rotated = r));
    const oldReplies = oldStreams.map((s, i) => trickle(s, chunkSets[i] as Buffer[], 10, rotation));
    await new Promise((r) => setTimeout(r, 50));

    // Rotate the server, then the client (the node proxy renews at half-life).
    const newServer = await mesh.ca.issue('ns-b', 'sa-server');
    mesh.server.rotate({ certChain: newServer.certChain, key: newServer.key, trustBundle: mesh.ca.bundle });
    const newClient = await mesh.ca.issue('ns-a', 'sa-client');
    const rotatedOptions = mesh.openOptions({ source: { certChain: newClient.certChain, key: newClient.key } });
    const newSets = Array.from({ length: 5 }, () => Array.from({ length: 5 }, () => randomBytes(32 * 1024)));
    const newStreams = await Promise.all(newSets.map(() => mesh.client.open(rotatedOptions)));
    const newReplies = newStreams.map((s, i) => trickle(s, newSets[i] as Buffer[], 10, Promise.resolve()));
    // Every old stream is still half-way through its transfer here.
    expect(oldStreams.every((s) => !s.writableEnded && !s.closed)).toBe(true);
    rotated();

    // Old streams stayed on the old connection (old server cert); new ones see the new cert.
    for (const s of oldStreams) expect(peerSerial(s)).toBe(mesh.serverCreds.serialNumber);
    for (const s of newStreams) expect(peerSerial(s)).toBe(newServer.serialNumber);

    const expectDigest = (chunks: Buffer[]): string => {
      const all = Buffer.concat(chunks);
      return `${all.length} ${sha256(all)}`;
    };
    expect(await Promise.all(oldReplies)).toEqual(chunkSets.map(expectDigest));
    expect(await Promise.all(newReplies)).toEqual(newSets.map(expectDigest));
    expect(mesh.server.stats().streamsRefused).toEqual({});

    // The old client connection drains and closes; only the new one remains.
    await eventually(() => mesh.client.connectionCount() === 1);
    expect(mesh.client.connectionCount()).toBe(1);
    expect(mesh.requests.length).toBe(25);
    expect(new Set(mesh.requests.map((r) => r.peerSpiffeId))).toEqual(new Set([newClient.spiffeId]));
  });

  it('hands a connection dialled with credentials that were current to the tunnels that waited for it, though newer ones arrived meanwhile', async () => {
    // A slow machine (a VM under TCG): each dial takes longer than the time between two
    // rotations, so every connection is already on old credentials when it is ready.
    const dial = (host: string, port: number): Promise<Socket> =>
      new Promise((resolve, reject) => {
        setTimeout(() => {
          const s = tcpConnect({ host, port }, () => resolve(s));
          s.once('error', reject);
        }, 150);
      });
    const creds = [mesh.clientCreds];
    for (let i = 0; i < 3; i++) creds.push(await mesh.ca.issue('ns-a', 'sa-client'));
    const before = mesh.server.stats().connectionsAccepted;
    const opens: Promise<ClientHttp2Stream>[] = [];
    for (const c of creds) {
      // two tunnels per credential generation, the next generation arriving while they wait
      const o = mesh.openOptions({ dial, source: { certChain: c.certChain, key: c.key } });
      opens.push(mesh.client.open(o), mesh.client.open(o));
      await new Promise((r) => setTimeout(r, 50));
    }
    const streams = await Promise.all(opens);
    const sessions = new Set(streams.map((s) => s.session));
    const payloads = streams.map(() => randomBytes(64 * 1024));
    const replies = await Promise.all(streams.map((s, i) => roundTrip(s, payloads[i] as Buffer)));
    expect(replies.map((b) => b.toString('utf8'))).toEqual(payloads.map((p) => `${p.length} ${sha256(p)}`));
    // one connection per generation, each shared by the two tunnels that waited for it
    expect(mesh.server.stats().connectionsAccepted - before).toBe(creds.length);
    expect(sessions.size).toBe(creds.length);
    // the outdated ones close after their last stream; the newest stays pooled
    await eventually(() => mesh.client.connectionCount() === 1);
    expect(mesh.client.connectionCount()).toBe(1);
  });

  it('still requires a client certificate after rotation', async () => {
    const { connect } = await import('node:tls');
    const [host, port] = mesh.destination.split(':');
    const sock = connect({ host, port: Number(port), ca: mesh.ca.bundle.pem, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
    sock.on('error', () => undefined);
    sock.resume();
    await new Promise((r) => sock.once('close', r));
    expect(mesh.server.stats().tlsErrors).toBeGreaterThanOrEqual(1);
  });
});
