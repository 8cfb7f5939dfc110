import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionTable } from '../connections/table';
import { FORWARD_BUFFER_BYTES, splice, type SpliceResult } from '../../common/hbone/splice';

// The passthrough path's splice (handlers.ts) is the HBONE one (common/hbone/splice.ts): between
// two TCP sockets it forwards FIN as FIN, resets one side when the other ends abnormally and counts
// the bytes. These are the passthrough proxy's assertions, on a proxy shaped like handlers.ts.

// A proxy on loopback that splices every accepted connection to `target`, recording it in a table.
function startProxy(
  target: AddressInfo,
  table: ConnectionTable,
  closed: Array<{ sent: number; received: number; error?: string }>,
  results: SpliceResult[] = [],
  accepted: Socket[] = [],
): Promise<Server> {
  const server = createServer({ allowHalfOpen: true }, (down) => {
    accepted.push(down);
    const up = connect({ host: '127.0.0.1', port: target.port, allowHalfOpen: true });
    const id = table.add({
      direction: 'outbound',
      workload: 'default/client',
      source: { address: down.remoteAddress ?? '', port: down.remotePort ?? 0 },
      originalDestination: { address: '127.0.0.1', port: target.port },
      downstream: down,
    });
    splice(down, up, (r) => {
      results.push(r);
      const rec = table.close(id, r.error?.message);
      closed.push({ sent: rec?.bytesSent ?? -1, received: rec?.bytesReceived ?? -1, error: rec?.error });
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// Upstream that answers each connection with sha256(everything received) once the client half-closes,
// then a trailer, then closes its side.
function startHashServer(): Promise<Server> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    const h = createHash('sha256');
    s.on('data', (d: Buffer) => h.update(d));
    s.on('end', () => {
      s.end(h.digest('hex') + '\n');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function sendAndHash(port: number, payload: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const c: Socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('end', () => resolve(Buffer.concat(chunks).toString().trim()));
    c.on('error', reject);
    c.on('connect', () => c.end(payload));
  });
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

describe('splice', () => {
  it.each([0, 1, 65_536, 4 * 1024 * 1024])('carries %i bytes intact, half-close delivers the reply, counts bytes', async (size) => {
    const table = new ConnectionTable();
    const closed: Array<{ sent: number; received: number; error?: string }> = [];
    const results: SpliceResult[] = [];
    const upstream = await startHashServer();
    const proxy = await startProxy(upstream.address() as AddressInfo, table, closed, results);
    servers.push(upstream, proxy);
    const payload = randomBytes(size);
    const reply = await sendAndHash((proxy.address() as AddressInfo).port, payload);
    expect(reply).toBe(createHash('sha256').update(payload).digest('hex'));
    await expect.poll(() => closed.length).toBe(1);
    expect(closed[0]).toEqual({ sent: size, received: 65, error: undefined });
    // the splice's own counts agree with the sockets' counters
    expect(results[0]).toMatchObject({ bytesToUpstream: size, bytesToDownstream: 65, clean: true });
    expect(table.size).toBe(0);
    expect(table.stats()).toMatchObject({ opened: 1, closed: 1, open: 0, bytesSent: size, bytesReceived: 65 });
  });

  it('forwards a FIN that arrived (and ended the socket) before the splice began: a 0-byte client is answered', async () => {
    const upstream = await startHashServer();
    const target = upstream.address() as AddressInfo;
    const results: SpliceResult[] = [];
    // as the outbound tunnel path does: the captured socket is paused while its upstream is dialled
    const proxy = createServer({ allowHalfOpen: true }, (down) => {
      down.pause();
      down.once('end', () => {
        const up = connect({ host: '127.0.0.1', port: target.port, allowHalfOpen: true });
        up.once('connect', () => splice(down, up, (r) => results.push(r)));
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    servers.push(upstream, proxy);
    const reply = await sendAndHash((proxy.address() as AddressInfo).port, Buffer.alloc(0));
    expect(reply).toBe(createHash('sha256').update(Buffer.alloc(0)).digest('hex'));
    await expect.poll(() => results.length).toBe(1);
    expect(results[0]).toMatchObject({ bytesToUpstream: 0, bytesToDownstream: 65, clean: true });
  });

  it('keeps many concurrent connections apart', async () => {
    const table = new ConnectionTable();
    const closed: Array<{ sent: number; received: number }> = [];
    const upstream = await startHashServer();
    const proxy = await startProxy(upstream.address() as AddressInfo, table, closed);
    servers.push(upstream, proxy);
    const port = (proxy.address() as AddressInfo).port;
    const payloads = Array.from({ length: 64 }, (_, i) => randomBytes(1000 + i * 997));
    const replies = await Promise.all(payloads.map((p) => sendAndHash(port, p)));
    replies.forEach((r, i) => expect(r).toBe(createHash('sha256').update(payloads[i]).digest('hex')));
    await expect.poll(() => closed.length).toBe(64);
  });

  it('resets the client when the upstream resets', async () => {
    const table = new ConnectionTable();
    const closed: Array<{ sent: number; received: number; error?: string }> = [];
    const upstream = createServer((s) => s.once('data', () => s.resetAndDestroy()));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const proxy = await startProxy(upstream.address() as AddressInfo, table, closed);
    servers.push(upstream, proxy);
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => {
      const c = connect({ host: '127.0.0.1', port: (proxy.address() as AddressInfo).port });
      c.on('connect', () => c.write('hello'));
      c.on('error', resolve);
      c.on('end', () => resolve(Object.assign(new Error('clean end'), { code: 'END' })));
    });
    expect(err.code).toBe('ECONNRESET');
    await expect.poll(() => closed.length).toBe(1);
    expect(closed[0].error).toMatch(/ECONNRESET/);
  });

  it('resets the upstream when the client side is torn down without an error (policy close)', async () => {
    const table = new ConnectionTable();
    const closed: Array<{ sent: number; received: number; error?: string }> = [];
    const results: SpliceResult[] = [];
    const accepted: Socket[] = [];
    const upstreamSaw: string[] = [];
    const upstream = createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', (e: NodeJS.ErrnoException) => upstreamSaw.push(e.code ?? e.message));
      s.on('end', () => upstreamSaw.push('FIN'));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const proxy = await startProxy(upstream.address() as AddressInfo, table, closed, results, accepted);
    servers.push(upstream, proxy);
    const c = connect({ host: '127.0.0.1', port: (proxy.address() as AddressInfo).port });
    c.on('error', () => undefined);
    await new Promise<void>((r) => c.on('connect', () => c.write('hello', () => r())));
    await expect.poll(() => accepted.length).toBe(1);
    await expect.poll(() => table.stats().bytesSent).toBe(5);
    accepted[0].destroy(); // what the node proxy does to close a connection policy no longer allows
    await expect.poll(() => upstreamSaw).toEqual(['ECONNRESET']);
    await expect.poll(() => results.length).toBe(1);
    expect(results[0].clean).toBe(false);
    c.destroy();
  });

  it('an app that stops reading holds the client back: the proxy buffers at most FORWARD_BUFFER_BYTES plus a chunk, and every byte arrives once it reads again', async () => {
    let app: Socket | undefined;
    const hash = createHash('sha256');
    let appEnded = false;
    const upstream = createServer({ allowHalfOpen: true }, (s) => {
      app = s;
      s.pause(); // a slow app: reads nothing until told to
      s.on('data', (d: Buffer) => hash.update(d));
      s.on('end', () => {
        appEnded = true;
        s.end();
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    let up: Socket | undefined;
    const results: SpliceResult[] = [];
    const proxy = createServer({ allowHalfOpen: true }, (down) => {
      up = connect({ host: '127.0.0.1', port: (upstream.address() as AddressInfo).port, allowHalfOpen: true });
      splice(down, up, (r) => results.push(r));
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    servers.push(upstream, proxy);
    const payload = randomBytes(64 * 1024 * 1024);
    const c = connect({ host: '127.0.0.1', port: (proxy.address() as AddressInfo).port, allowHalfOpen: true });
    c.on('error', () => undefined);
    c.end(payload);
    // the kernel buffers fill, then the proxy's: it stops reading the client at the limit
    let most = 0;
    for (let i = 0; i < 40; i++) {
      await new Promise((r) => setTimeout(r, 10));
      most = Math.max(most, up?.writableLength ?? 0);
    }
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThan(FORWARD_BUFFER_BYTES + 256 * 1024);
    expect(c.writableLength).toBeGreaterThan(0); // the client is held back, not drained into the proxy
    app?.resume();
    await expect.poll(() => appEnded, { timeout: 20_000 }).toBe(true);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(payload).digest('hex'));
    await expect.poll(() => results.length, { timeout: 5000 }).toBe(1);
    expect(results[0]).toMatchObject({ bytesToUpstream: payload.length, clean: true });
    c.destroy();
  });
});
