// Pool liveness: an HBONE peer that dies during traffic must not leave clients hanging. Two ways a
// peer goes: its process is killed (the kernel sends FIN/RST; the lab's waypoint restart), and the
// path to it stops carrying packets without closing (a netns or veth removed, a host gone). In both
// cases tunnels on the dead connection fail promptly, new tunnels do not queue on it, and once the
// peer is back a new connection carries traffic.
import { spawn, type ChildProcess } from 'node:child_process';
import type { ClientHttp2Stream } from 'node:http2';
import { connect as tcpConnect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TunnelConnectError } from '../../common/hbone/errors';
import { HboneServer, allow } from '../../common/hbone/server';
import { connectUpstream } from '../../common/hbone/upstream';
import { eventually, quietLogger, roundTrip, startMesh, tcpServer, type Mesh } from './fixture';
import { relay } from './relay';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

/** Like the node proxy's in-netns dialer: a connected socket that allows half-open. */
const halfOpenDial = (host: string, port: number): Promise<Socket> =>
  new Promise((resolve, reject) => {
    const s = tcpConnect({ host, port, allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });

/** Resolves with the error (or 'end'/'close') that finishes a stream, and how long it took. */
function outcome(s: ClientHttp2Stream): Promise<{ how: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    s.once('error', (e: Error) => resolve({ how: `error: ${e.message}`, ms: Date.now() - t0 }));
    s.once('close', () => resolve({ how: `close (rst ${s.rstCode})`, ms: Date.now() - t0 }));
  });
}

async function failure(p: Promise<unknown>): Promise<{ err: unknown; ms: number }> {
  const t0 = Date.now();
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  return { err, ms: Date.now() - t0 };
}

// A minimal HBONE peer in its own process (plain node:http2 over mutual TLS: CONNECT -> 200 ->
// splice to the target), so that it can be killed with SIGKILL like the lab's waypoint.
const PEER = `
const http2 = require('node:http2');
const net = require('node:net');
const c = JSON.parse(process.env.NM_PEER);
const server = http2.createSecureServer({ cert: c.cert, key: c.key, ca: c.ca, requestCert: true, rejectUnauthorized: true,
  minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ALPNProtocols: ['h2'], allowHTTP1: false });
server.on('stream', (stream, headers) => {
  const [host, port] = headers[':authority'].split(':');
  const up = net.connect({ host, port: Number(port) }, () => {
    stream.respond({ ':status': 200 });
    stream.pipe(up).pipe(stream);
  });
  up.on('error', () => stream.destroy());
  stream.on('error', () => up.destroy());
});
server.listen(c.port, '127.0.0.1', () => console.log(server.address().port));
`;

async function startPeer(mesh: Mesh, port: number): Promise<{ child: ChildProcess; port: number }> {
  const env = { ...process.env, NM_PEER: JSON.stringify({ cert: mesh.serverCreds.certChain, key: mesh.serverCreds.key, ca: mesh.ca.bundle.pem, port }) };
  const child = spawn(process.execPath, ['-e', PEER], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const listening = await new Promise<number>((resolve, reject) => {
    child.stdout?.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`the HBONE peer process exited (${code}) before listening`)));
  });
  return { child, port: listening };
}

function killed(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

describe('HBONE pool liveness', () => {
  it('a peer killed with SIGKILL fails open and new tunnels at once, even over a half-open dialled socket, and a restarted peer gets a new connection', async () => {
    const mesh = await startMesh();
    cleanups.push(() => mesh.close());
    const first = await startPeer(mesh, 0);
    const destination = `127.0.0.1:${first.port}`;
    const opts = (timeoutMs = 5_000) => mesh.openOptions({ destination, dial: halfOpenDial, sourceAddress: '10.200.1.4', timeoutMs });

    const inFlight = await mesh.client.open(opts());
    expect((await roundTrip(await mesh.client.open(opts()), Buffer.from('before'))).toString()).toBe('before');
    expect(mesh.client.connectionCount()).toBe(1);
    const inFlightEnd = outcome(inFlight);

    await killed(first.child);
    // The open tunnel ends (not a clean FIN of the app's data: the connection is gone).
    const ended = await inFlightEnd;
    expect(ended.ms).toBeLessThan(1_000);
    // The dead connection is out of the pool; a new tunnel fails fast (nothing listens) instead of
    // waiting for an answer on the dead connection.
    expect(await eventually(() => mesh.client.connectionCount() === 0, 1_000)).toBe(true);
    const refused = await failure(mesh.client.open(opts()));
    expect(refused.err).toBeInstanceOf(TunnelConnectError);
    expect((refused.err as Error).message).toContain('ECONNREFUSED');
    expect(refused.ms).toBeLessThan(1_000);

    // The peer comes back on the same port (the lab controller restarting a waypoint).
    await startPeer(mesh, first.port);
    expect((await roundTrip(await mesh.client.open(opts()), Buffer.from('after restart'))).toString()).toBe('after restart');
    expect(mesh.client.connectionCount()).toBe(1);
  });

  it('a connection that goes dark (no FIN, no RST) is found dead by the CONNECT probe: the tunnel fails within probe + PING timeout, and the next one uses a new connection', async () => {
    const mesh = await startMesh({ client: { keepaliveIntervalMs: 0, pingTimeoutMs: 300, openProbeAfterMs: 200, logger: quietLogger } });
    cleanups.push(() => mesh.close());
    const r = await relay(Number(mesh.destination.split(':')[1]));
    cleanups.push(() => r.close());
    const opts = () => mesh.openOptions({ destination: `127.0.0.1:${r.port}`, timeoutMs: 10_000 });

    const inFlight = await mesh.client.open(opts());
    expect((await roundTrip(await mesh.client.open(opts()), Buffer.from('x'))).toString()).toBe('x');
    const inFlightEnd = outcome(inFlight);
    r.blackhole();

    const dark = await failure(mesh.client.open(opts()));
    expect(dark.err).toBeInstanceOf(TunnelConnectError);
    // 200 ms probe delay + 300 ms PING timeout, far below the 10 s open timeout
    expect(dark.ms).toBeGreaterThanOrEqual(400);
    expect(dark.ms).toBeLessThan(2_000);
    expect((dark.err as Error).message).not.toContain('within 10000 ms');
    // The tunnel that was open on the dead connection fails too, and the pool is empty.
    expect((await inFlightEnd).ms).toBeLessThan(2_000);
    expect(await eventually(() => mesh.client.connectionCount() === 0, 500)).toBe(true);

    r.restore();
    expect((await roundTrip(await mesh.client.open(opts()), Buffer.from('fresh'))).toString()).toBe('fresh');
    expect(mesh.server.stats().connectionsAccepted).toBe(2);
  });

  it('a connection that keeps delivering bytes is alive: a PING answer later than the timeout (stuck behind a slow peer) cuts none of its tunnels, and silence still does', async () => {
    // the app behind the tunnel sends a byte every 50 ms (a download the peer keeps pushing)
    const ticker = (s: Socket): void => {
      const iv = setInterval(() => s.write('t'), 50);
      s.on('close', () => clearInterval(iv));
      s.on('error', () => undefined);
    };
    const mesh = await startMesh({ upstream: ticker, client: { keepaliveIntervalMs: 100, pingTimeoutMs: 300, logger: quietLogger } });
    cleanups.push(() => mesh.close());
    const r = await relay(Number(mesh.destination.split(':')[1]));
    cleanups.push(() => r.close());
    const download = await mesh.client.open(mesh.openOptions({ destination: `127.0.0.1:${r.port}` }));
    let got = 0;
    download.on('data', (d: Buffer) => (got += d.length));
    const end = outcome(download);
    r.stallUp(); // from now on no PING reaches the server: none is answered
    await new Promise((res) => setTimeout(res, 1_500)); // keepalive 100 + PING timeout 300, several times over
    const before = got;
    await new Promise((res) => setTimeout(res, 300));
    expect(got).toBeGreaterThan(before); // still flowing
    expect(mesh.client.connectionCount()).toBe(1);
    expect(download.destroyed).toBe(false);
    // nothing arrives any more: the unanswered PING now means a dead connection
    r.blackhole();
    const t0 = Date.now();
    const ended = await end;
    expect(ended.how).toMatch(/error|close/);
    expect(Date.now() - t0).toBeLessThan(2_000); // one or two PING timeouts, plus scheduling
    expect(await eventually(() => mesh.client.connectionCount() === 0, 1_000)).toBe(true);
  });

  it('the keepalive PING retires a dark idle connection before the next tunnel needs it', async () => {
    const mesh = await startMesh({ client: { keepaliveIntervalMs: 100, pingTimeoutMs: 200, logger: quietLogger } });
    cleanups.push(() => mesh.close());
    const r = await relay(Number(mesh.destination.split(':')[1]));
    cleanups.push(() => r.close());
    const opts = () => mesh.openOptions({ destination: `127.0.0.1:${r.port}` });

    expect((await roundTrip(await mesh.client.open(opts()), Buffer.from('a'))).toString()).toBe('a');
    expect(mesh.client.connectionCount()).toBe(1);
    r.blackhole();
    const t0 = Date.now();
    expect(await eventually(() => mesh.client.connectionCount() === 0, 2_000)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(1_000); // interval + timeout = 300 ms, plus scheduling
    r.restore();
    const t1 = Date.now();
    expect((await roundTrip(await mesh.client.open(opts()), Buffer.from('b'))).toString()).toBe('b');
    expect(Date.now() - t1).toBeLessThan(1_000);
  });

  it('a live connection answers its PINGs: frequent keepalive and a slow upstream do not cut tunnels', async () => {
    const slowMs = 800;
    const mesh = await startMesh({
      client: { keepaliveIntervalMs: 30, pingTimeoutMs: 500, openProbeAfterMs: 50, logger: quietLogger },
      // the destination takes its time to connect the app (slower than the probe delay)
      decide: async (_r, connect) => {
        await new Promise((res) => setTimeout(res, slowMs));
        return connect();
      },
    });
    cleanups.push(() => mesh.close());
    const t0 = Date.now();
    const streams = await Promise.all(Array.from({ length: 5 }, () => mesh.client.open(mesh.openOptions())));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(slowMs - 50);
    // keep them open across many keepalive rounds
    await new Promise((res) => setTimeout(res, 600));
    const backs = await Promise.all(streams.map((s, i) => roundTrip(s, Buffer.from(`slow ${i}`))));
    expect(backs.map(String)).toEqual(streams.map((_s, i) => `slow ${i}`));
    expect(mesh.server.stats().connectionsAccepted).toBe(1);
    expect(mesh.client.connectionCount()).toBe(1);
  });

  it('a server that restarts gracefully (GOAWAY) while the client holds a half-open dialled connection is reconnected to', async () => {
    const mesh = await startMesh();
    cleanups.push(() => mesh.close());
    const port = Number(mesh.destination.split(':')[1]);
    const opts = () => mesh.openOptions({ dial: halfOpenDial, sourceAddress: '10.200.1.9' });
    expect((await roundTrip(await mesh.client.open(opts()), Buffer.from('one'))).toString()).toBe('one');
    await mesh.server.close(100);
    expect(await eventually(() => mesh.client.connectionCount() === 0, 1_000)).toBe(true);
    const up = await tcpServer((s) => s.pipe(s));
    cleanups.push(() => up.close());
    const replacement = new HboneServer({
      credentials: { certChain: mesh.serverCreds.certChain, key: mesh.serverCreds.key, trustBundle: mesh.ca.bundle },
      logger: quietLogger,
      handler: async (r) => allow(await connectUpstream(r.target)),
    });
    cleanups.push(() => replacement.close(100));
    await replacement.listen({ host: '127.0.0.1', port });
    expect((await roundTrip(await mesh.client.open(opts()), Buffer.from('two'))).toString()).toBe('two');
    expect(replacement.stats().connectionsAccepted).toBe(1);
  });
});
