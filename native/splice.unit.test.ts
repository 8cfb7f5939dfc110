// The addon's in-kernel splice over loopback TCP (no privilege needed): a proxy accepts, dials the
// target and hands both sockets to spliceInKernel. Bytes intact both ways (also what Node had
// already read before the hand-over), FIN forwarded as FIN, a reset forwarded as a reset, cut()
// resets both sides, and the counts reported at the end.
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { rawSocket, type RawSocket } from '../common/hbone/raw-socket';
import { kernelSplicePooledPipes, spliceInKernel, takeOver, type KernelSplice, type KernelSpliceResult } from './splice';

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

function listen(onConnection: (s: Socket) => void): Promise<AddressInfo> {
  const server = createServer({ allowHalfOpen: true }, onConnection);
  servers.push(server);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address() as AddressInfo)));
}

interface Proxy {
  port: number;
  results: KernelSpliceResult[];
  splices: KernelSplice[];
}

/** A proxy that splices every accepted connection to `target` in the kernel. */
async function kernelProxy(target: AddressInfo, beforeSplice?: (down: Socket) => Promise<void>): Promise<Proxy> {
  const p: Proxy = { port: 0, results: [], splices: [] };
  const a = await listen((down) => {
    down.pause();
    down.on('error', () => undefined);
    const up = connect({ port: target.port, host: '127.0.0.1', allowHalfOpen: true }, async () => {
      await beforeSplice?.(down);
      p.splices.push(spliceInKernel(down, up, (r) => p.results.push(r)));
    });
    up.on('error', () => undefined);
  });
  p.port = a.port;
  return p;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Sends `payload`, half-closes, and collects everything until the peer closes. */
function exchange(port: number, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', reject);
    s.on('end', () => {
      s.end();
      resolve(Buffer.concat(got));
    });
    s.end(payload);
  });
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  for (const t = Date.now() + ms; !cond(); ) {
    if (Date.now() > t) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * The same proxy handing bare fds (RawSocket) over, as the node proxy's same-node path does with
 * the fds the addon accepted and connected: here dups of the accepted and dialled sockets' fds
 * with what Node had read of them as the prefix (the sockets destroyed), so that nothing of Node's
 * is left on either connection.
 */
async function rawProxy(target: AddressInfo): Promise<Proxy> {
  const p: Proxy = { port: 0, results: [], splices: [] };
  const bare = (s: Socket): RawSocket => {
    const t = takeOver(s); // a dup of its fd and what Node had read of it, the socket destroyed
    return rawSocket(t.fd, t.prefix);
  };
  const a = await listen((down) => {
    down.pause();
    down.on('error', () => undefined);
    const up = connect({ port: target.port, host: '127.0.0.1', allowHalfOpen: true }, () => {
      p.splices.push(spliceInKernel(bare(down), bare(up), (r) => p.results.push(r)));
    });
    up.on('error', () => undefined);
  });
  p.port = a.port;
  return p;
}

describe('spliceInKernel', () => {
  it('takes bare fds (RawSocket) as they are: 0 B, 1 B and 1 MiB echoed intact, FIN as FIN, both directions counted', async () => {
    const echo = await listen((s) => s.pipe(s));
    const proxy = await rawProxy(echo);
    const sizes = [0, 1, 1 << 20];
    for (const size of sizes) {
      const payload = randomBytes(size);
      const back = await exchange(proxy.port, payload);
      expect(sha(back)).toBe(sha(payload));
    }
    await until(() => proxy.results.length === sizes.length);
    for (const [i, size] of sizes.entries()) expect(proxy.results[i]).toMatchObject({ aToB: size, bToA: size, clean: true });
  });

  it('echoes 0 B, 1 B, 1 MiB and 16 MiB intact, forwards FIN as FIN and counts both directions', async () => {
    const echo = await listen((s) => s.pipe(s));
    const proxy = await kernelProxy(echo);
    for (const size of [0, 1, 1 << 20, 16 << 20]) {
      const payload = randomBytes(size);
      const back = await exchange(proxy.port, payload);
      expect(back.length).toBe(size);
      expect(sha(back)).toBe(sha(payload));
    }
    await until(() => proxy.results.length === 4);
    for (const [i, size] of [0, 1, 1 << 20, 16 << 20].entries()) expect(proxy.results[i]).toMatchObject({ aToB: size, bToA: size, clean: true });
  });

  it('half-close: the server still answers after the client finished sending', async () => {
    // the server waits for the client's FIN, then replies and closes
    const server = await listen((s) => {
      const got: Buffer[] = [];
      s.on('data', (d: Buffer) => got.push(d));
      s.on('end', () => s.end(Buffer.concat([Buffer.from('got '), Buffer.concat(got)])));
    });
    const proxy = await kernelProxy(server);
    expect((await exchange(proxy.port, Buffer.from('hello'))).toString()).toBe('got hello');
    await until(() => proxy.results.length === 1);
    expect(proxy.results[0]).toMatchObject({ aToB: 5, bToA: 9, clean: true });
  });

  it('bytes Node had already read before the hand-over are delivered first', async () => {
    const echo = await listen((s) => s.pipe(s));
    // let the client's first bytes reach Node's buffer before the splice starts
    const proxy = await kernelProxy(echo, async (down) => {
      down.resume();
      down.pause();
      await new Promise((r) => setTimeout(r, 50));
    });
    const payload = randomBytes(300_000);
    const back = await exchange(proxy.port, payload);
    expect(sha(back)).toBe(sha(payload));
  });

  it('a reset of one side resets the other; cut() resets both and reports the connection as not clean', async () => {
    const sockets: Socket[] = [];
    const server = await listen((s) => {
      s.on('error', () => undefined);
      sockets.push(s);
    });
    const proxy = await kernelProxy(server);
    const ended = (s: Socket): Promise<string> =>
      new Promise((resolve) => {
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        s.on('close', () => resolve('closed'));
      });

    const c1 = connect(proxy.port, '127.0.0.1');
    await until(() => sockets.length === 1 && proxy.splices.length === 1);
    const c1End = ended(c1);
    sockets[0]!.resetAndDestroy();
    expect(await c1End).toBe('ECONNRESET');
    await until(() => proxy.results.length === 1);
    expect(proxy.results[0]!.clean).toBe(false);

    const c2 = connect(proxy.port, '127.0.0.1');
    await until(() => sockets.length === 2 && proxy.splices.length === 2);
    const [c2End, serverEnd] = [ended(c2), ended(sockets[1]!)];
    expect(proxy.splices[1]!.cut()).toBe(true);
    expect(await c2End).toBe('ECONNRESET');
    expect(await serverEnd).toBe('ECONNRESET');
    await until(() => proxy.results.length === 2);
    expect(proxy.results[1]).toMatchObject({ clean: false, code: 'reset' });
    expect(proxy.splices[1]!.bytes()).toBeUndefined();
  });

  it('many connections at once all arrive intact; finished ones leave 64 empty pipes (no more) for the next connections', async () => {
    const echo = await listen((s) => s.pipe(s));
    const proxy = await kernelProxy(echo);
    // 40 connections open at the same time: 80 pipes in use
    const n = 40;
    const clients = Array.from({ length: n }, () => connect({ port: proxy.port, host: '127.0.0.1', allowHalfOpen: true }));
    const payloads = clients.map((_, i) => randomBytes(256 * 1024 + i));
    const backs = clients.map(
      (c) =>
        new Promise<Buffer>((resolve, reject) => {
          const got: Buffer[] = [];
          c.on('data', (d: Buffer) => got.push(d));
          c.on('error', reject);
          c.on('end', () => {
            c.end();
            resolve(Buffer.concat(got));
          });
        }),
    );
    await until(() => proxy.splices.length === n);
    for (const [i, c] of clients.entries()) c.end(payloads[i]);
    for (const [i, back] of (await Promise.all(backs)).entries()) expect(sha(back)).toBe(sha(payloads[i]!));
    await until(() => proxy.results.length === n);
    expect(proxy.results.every((r) => r.clean)).toBe(true);
    expect(kernelSplicePooledPipes()).toBe(64);
    const one = randomBytes(1 << 20);
    expect(sha(await exchange(proxy.port, one))).toBe(sha(one));
    await until(() => proxy.results.length === n + 1);
    expect(kernelSplicePooledPipes()).toBe(64);
  });
});
