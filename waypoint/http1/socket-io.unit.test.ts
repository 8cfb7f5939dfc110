// Socket I/O past node's streams (socket-io.ts) on real loopback sockets: bytes arrive whole and in
// order, a write the kernel cannot take at once is finished later with 'drain', the end of the
// stream is still the socket's 'end', and anything but a plain TCP socket takes the stream API.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { readInto, writeNow } from './socket-io';

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/** A connected pair of loopback sockets: [client, the server's side]. */
async function pair(): Promise<[Socket, Socket]> {
  const srv = createServer();
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const accepted = once(srv, 'connection') as Promise<[Socket]>;
  const c = connect((srv.address() as AddressInfo).port, '127.0.0.1');
  await once(c, 'connect');
  const [s] = await accepted;
  return [c, s];
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('socket-io', () => {
  it("reads an accepted socket into the caller's buffer, bytes already buffered first, and still ends with 'end'", async () => {
    const [c, s] = await pair();
    c.write('first;');
    await once(s, 'readable');
    const buffered = s.read() as Buffer;
    s.unshift(buffered);
    const buf = Buffer.alloc(64 * 1024);
    const got: Buffer[] = [];
    expect(readInto(s, buf, (n) => got.push(Buffer.from(buf.subarray(0, n))))).toBe(true);
    const first = s.read() as Buffer | null;
    if (first) got.unshift(first);
    const data = randomBytes(3 * 1024 * 1024);
    c.end(data);
    await once(s, 'end');
    const all = Buffer.concat(got);
    expect(all.subarray(0, 6).toString()).toBe('first;');
    expect(sha(all.subarray(6))).toBe(sha(data));
    s.destroy();
  });

  it("writes in order, and a write the kernel cannot take at once is finished later and followed by 'drain'", async () => {
    const [c, s] = await pair();
    c.pause(); // the reader is away: the kernel's buffers fill
    const parts = [Buffer.from('head;'), randomBytes(24 * 1024 * 1024), Buffer.from(';tail')];
    const written = [writeNow(s, parts[0]!), writeNow(s, parts[1]!)];
    // Bytes behind one left in flight go out after it (queued in libuv, or in the Writable).
    written.push(writeNow(s, 'x'.repeat(10)), writeNow(s, parts[2]!));
    expect(written[1]).toBe(false);
    const drained = once(s, 'drain');
    const got: Buffer[] = [];
    c.on('data', (d: Buffer) => got.push(d));
    c.resume();
    await drained;
    s.end();
    await once(c, 'end');
    const want = Buffer.concat([parts[0]!, parts[1]!, Buffer.from('x'.repeat(10)), parts[2]!]);
    expect(sha(Buffer.concat(got))).toBe(sha(want));
  });

  it('leaves anything but a plain TCP socket to the stream API', async () => {
    const p = new PassThrough();
    expect(readInto(p, Buffer.alloc(16), () => undefined)).toBe(false);
    expect(writeNow(p, Buffer.from('a'))).toBe(true);
    expect(writeNow(p, 'b')).toBe(true);
    p.end();
    const got: Buffer[] = [];
    for await (const chunk of p) got.push(chunk as Buffer);
    expect(Buffer.concat(got).toString()).toBe('ab');
  });
});
