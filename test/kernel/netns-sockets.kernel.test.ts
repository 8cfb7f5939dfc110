// Sockets inside another network namespace: listen and connect there from this process and use
// them as ordinary net objects; bytes intact; errors carry errno; the event loop thread stays in
// its own netns; cookies and marks; kernel probes.
import { createHash, randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import * as net from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  connectInNetns,
  fdOf,
  listenInNetns,
  NativeError,
  netnsCookie,
  probeCaptureFeatures,
  probeProgramType,
  setMark,
  socketCookie,
  socketNetnsCookie,
} from '../../native';
import { privilegedDescribe } from '../support/privileged';
import { scaled } from '../support/speed';
import { Scratch, sh } from './support';

privilegedDescribe('kernel', 'sockets in another netns', () => {
  const scratch = new Scratch('nm-ksock');
  const servers: net.Server[] = [];
  let ns = '';
  let echo: net.Server;

  beforeAll(() => {
    ns = scratch.netns('a');
    sh('ip', ['-n', ns.split('/').pop() as string, 'addr', 'add', '10.242.0.1/32', 'dev', 'lo']);
    echo = net.createServer((s) => {
      s.pipe(s);
      s.on('error', () => undefined);
    });
    echo.listen({ fd: listenInNetns(ns, { host: '10.242.0.1', port: 7000 }) });
    servers.push(echo);
  });

  afterAll(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
    scratch.cleanup();
  });

  it('listens and connects inside the netns; 4 MiB echo arrives intact', async () => {
    const before = readlinkSync('/proc/thread-self/ns/net');
    const s = await connectInNetns(ns, { host: '10.242.0.1', port: 7000 });
    expect(readlinkSync('/proc/thread-self/ns/net')).toBe(before);
    expect(s.remoteAddress).toBe('10.242.0.1');
    expect(s.remotePort).toBe(7000);
    const data = randomBytes(4 * 1024 * 1024);
    const got = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let n = 0;
      s.on('data', (d: Buffer) => {
        chunks.push(d);
        n += d.length;
        if (n >= data.length) resolve(Buffer.concat(chunks));
      });
      s.on('error', reject);
      s.write(data);
    });
    s.destroy();
    expect(createHash('sha256').update(got).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
  });

  it("the sockets live in the target netns, not in this process's", async () => {
    const s = await connectInNetns(ns, { host: '10.242.0.1', port: 7000 });
    try {
      expect(socketNetnsCookie(fdOf(s))).toBe(netnsCookie(ns));
      expect(socketNetnsCookie(fdOf(echo))).toBe(netnsCookie(ns));
      expect(netnsCookie(ns)).not.toBe(netnsCookie('/proc/self/ns/net'));
    } finally {
      s.destroy();
    }
  });

  it('runs 50 concurrent connects, each its own socket', async () => {
    const sockets = await Promise.all(Array.from({ length: 50 }, () => connectInNetns(ns, { host: '10.242.0.1', port: 7000 })));
    const cookies = new Set(sockets.map((s) => socketCookie(fdOf(s))));
    for (const s of sockets) s.destroy();
    expect(cookies.size).toBe(50);
    expect([...cookies].every((c) => c > 0n)).toBe(true);
  });

  it('binds a local address and sets a mark', async () => {
    const s = await connectInNetns(ns, { host: '10.242.0.1', port: 7000, localAddress: '127.0.0.1', localPort: 0, mark: 0x539 });
    expect(s.localAddress).toBe('127.0.0.1');
    setMark(fdOf(s), 0x53a);
    s.destroy();
  });

  it('errors carry errno, the operation and the object', async () => {
    const refused = await connectInNetns(ns, { host: '10.242.0.1', port: 7001 }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(NativeError);
    expect(refused).toMatchObject({ code: 'ECONNREFUSED', errno: 111 });
    expect((refused as Error).message).toContain('10.242.0.1:7001');

    const inUse = (() => {
      try {
        listenInNetns(ns, { host: '10.242.0.1', port: 7000 });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(inUse).toMatchObject({ code: 'EADDRINUSE' });

    const noNs = (() => {
      try {
        listenInNetns('/run/netns/nm-ksock-does-not-exist', { host: '127.0.0.1', port: 1 });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(noNs).toBeInstanceOf(NativeError);
    expect(noNs).toMatchObject({ code: 'ENOENT', object: '/run/netns/nm-ksock-does-not-exist' });

    // SYNs into a veth nobody answers on: the connect gives up after timeoutMs with ETIMEDOUT
    const name = ns.split('/').pop() as string;
    sh('ip', ['-n', name, 'link', 'add', 'nm-ks0', 'type', 'veth', 'peer', 'name', 'nm-ks1']);
    sh('ip', ['-n', name, 'link', 'set', 'nm-ks0', 'up']);
    sh('ip', ['-n', name, 'route', 'add', '10.243.0.0/16', 'dev', 'nm-ks0']);
    const t0 = Date.now();
    const silent = await connectInNetns(ns, { host: '10.243.0.1', port: 80, timeoutMs: 300 }).catch((e: unknown) => e);
    const elapsed = Date.now() - t0;
    expect(silent).toBeInstanceOf(NativeError);
    expect((silent as NativeError).code).toBe('ETIMEDOUT');
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(scaled(2000)); // a starved machine delivers the timeout late, never early
  });

  it('a connect timeout counts from the call, also right after the event loop was busy', async () => {
    // SYNs into a veth nobody answers on (as above). The loop's cached time is taken at the start
    // of an iteration; JS that keeps the loop busy for 250 ms before connecting must not eat into
    // the 300 ms timeout (it once fired after ~50 ms).
    const name = ns.split('/').pop() as string;
    sh('ip', ['-n', name, 'link', 'add', 'nm-ks2', 'type', 'veth', 'peer', 'name', 'nm-ks3']);
    sh('ip', ['-n', name, 'link', 'set', 'nm-ks2', 'up']);
    sh('ip', ['-n', name, 'route', 'add', '10.245.0.0/16', 'dev', 'nm-ks2']);
    // the worker's pool holds ready sockets, so the connect starts within the call itself
    (await connectInNetns(ns, { host: '10.242.0.1', port: 7000 })).destroy();
    // a fresh loop iteration, then 250 ms of work on the loop thread before the connect
    await new Promise((r) => setImmediate(r));
    const busyUntil = Date.now() + 250;
    while (Date.now() < busyUntil) {
      /* the event loop is blocked */
    }
    const t0 = Date.now();
    const silent = await connectInNetns(ns, { host: '10.245.0.1', port: 80, timeoutMs: 300 }).catch((e: unknown) => e);
    const elapsed = Date.now() - t0;
    expect((silent as NativeError).code).toBe('ETIMEDOUT');
    expect(elapsed).toBeGreaterThanOrEqual(280);
    expect(elapsed).toBeLessThan(scaled(2000)); // a starved machine delivers the timeout late, never early
  });

  it('netns cookies differ between namespaces and stay the same for one', () => {
    const a = netnsCookie(ns);
    expect(netnsCookie(ns)).toBe(a);
    expect(netnsCookie('/proc/self/ns/net')).not.toBe(a);
  });

  it('probes name every capture feature and this kernel has them', () => {
    const features = probeCaptureFeatures();
    expect(features.length).toBeGreaterThanOrEqual(9);
    expect(features.filter((f) => !f.ok)).toEqual([]);
    expect(() => probeProgramType('no_such_type')).toThrow(/unknown type/);
  });
});
