// connectInNetns through long-lived per-netns worker threads: every socket lands in the netns it
// was asked for (also with pools of ready sockets for two namespaces, and when a path is re-bound
// to a new netns), workers leave on releaseNetns, after the idle time and when the netns is
// deleted, and then no thread of this process is in the netns any more, the request queue is
// bounded, allowHalfOpen.
import { readdirSync, readlinkSync, statSync } from 'node:fs';
import * as net from 'node:net';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import {
  closeNetnsWorkers,
  configureNetnsWorkers,
  connectInNetns,
  fdOf,
  listenInNetns,
  NativeError,
  netnsCookie,
  netnsWorkers,
  releaseNetns,
  socketNetnsCookie,
  type NetnsWorkerConfig,
} from '../../native';
import { privilegedDescribe } from '../support/privileged';
import { Scratch, sh } from './support';

const IP = '10.244.0.1';
const PORT = 7200;

/** Threads of this process whose netns is the one with this inode. */
function threadsIn(inode: number): number[] {
  return readdirSync('/proc/self/task')
    .filter((tid) => {
      try {
        return readlinkSync(`/proc/self/task/${tid}/ns/net`) === `net:[${inode}]`;
      } catch {
        return false; // the thread exited meanwhile
      }
    })
    .map(Number);
}

/** Connects, reads the line the server greets with, closes. */
async function whoAnswers(netnsPath: string): Promise<string> {
  const s = await connectInNetns(netnsPath, { host: IP, port: PORT, timeoutMs: 2000 });
  return new Promise((resolve, reject) => {
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
}

privilegedDescribe('kernel', 'netns worker threads', () => {
  const scratch = new Scratch('nm-kwork');
  const servers: net.Server[] = [];
  const defaults: NetnsWorkerConfig = configureNetnsWorkers();

  /** A netns with IP on lo and a server on IP:PORT that greets with `name` and closes. */
  function greeter(netnsPath: string, name: string): void {
    sh('ip', ['-n', netnsPath.split('/').pop() as string, 'addr', 'add', `${IP}/32`, 'dev', 'lo']);
    const srv = net.createServer((s) => {
      s.on('error', () => undefined);
      s.end(name);
    });
    srv.listen({ fd: listenInNetns(netnsPath, { host: IP, port: PORT }) });
    servers.push(srv);
  }

  let a = '';
  let b = '';
  beforeAll(() => {
    a = scratch.netns('a');
    b = scratch.netns('b');
    greeter(a, 'a');
    greeter(b, 'b');
  });

  afterEach(() => {
    configureNetnsWorkers(defaults);
  });

  afterAll(async () => {
    try {
      closeNetnsWorkers();
      // a server still holding a half-open connection must not keep the namespaces around
      const closed = Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
      await Promise.race([closed, new Promise((r) => setTimeout(r, 2000))]);
    } finally {
      scratch.cleanup();
    }
  });

  it('one worker per netns; 400 interleaved connects each reach their own netns', async () => {
    const asks = Array.from({ length: 400 }, (_, i) => (i % 2 ? b : a));
    const answers: string[] = [];
    // 8 lanes in flight, so pools are taken from and refilled while others wait for the worker
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < asks.length) {
          const i = next++;
          answers[i] = await whoAnswers(asks[i] as string);
        }
      }),
    );
    expect(answers).toEqual(asks.map((p) => (p === a ? 'a' : 'b')));
    const workers = netnsWorkers();
    expect(workers.map((w) => w.inode).sort()).toEqual([statSync(a).ino, statSync(b).ino].sort());
    expect(workers.every((w) => w.sockets >= 200)).toBe(true);
  });

  it('sockets from the pool live in the target netns', async () => {
    for (let i = 0; i < 20; i++) {
      const s = await connectInNetns(i % 2 ? b : a, { host: IP, port: PORT });
      try {
        expect(socketNetnsCookie(fdOf(s))).toBe(netnsCookie(i % 2 ? b : a));
      } finally {
        s.destroy();
      }
    }
    expect(netnsWorkers().find((w) => w.path === a)?.pooled).toBeGreaterThan(0);
  });

  it("socketNetnsCookie through the BPF fallback (Linux < 5.14) leaves the netns's shared worker and its pool alone", async () => {
    const s = await connectInNetns(a, { host: IP, port: PORT });
    try {
      const inode = statSync(a).ino;
      const before = netnsWorkers().filter((w) => w.inode === inode);
      expect(before).toHaveLength(1);
      const threads = threadsIn(inode);
      expect(socketNetnsCookie(fdOf(s), 'bpf')).toBe(netnsCookie(a, 'bpf'));
      // the same worker (same path, socket count not reset), still running, pool intact
      const after = netnsWorkers().filter((w) => w.inode === inode);
      expect(after.map((w) => w.path)).toEqual([a]);
      expect(after[0]?.sockets).toBeGreaterThanOrEqual(before[0]?.sockets ?? Infinity);
      expect(threadsIn(inode)).toEqual(threads);
      // and no worker keyed by a /proc/self/fd path was left behind
      expect(netnsWorkers().filter((w) => w.path.startsWith('/proc/self/fd/'))).toEqual([]);
    } finally {
      s.destroy();
    }
  });

  it('releaseNetns stops the worker: no thread of this process stays in the netns; the next connect starts a new one', async () => {
    await whoAnswers(a);
    const inode = statSync(a).ino;
    expect(threadsIn(inode)).toHaveLength(1);
    expect(releaseNetns(a)).toBe(1);
    expect(netnsWorkers().map((w) => w.inode)).not.toContain(inode);
    expect(threadsIn(inode)).toEqual([]);
    expect(releaseNetns(a)).toBe(0);
    expect(await whoAnswers(a)).toBe('a');
    expect(netnsWorkers().map((w) => w.inode)).toContain(inode);
  });

  it('a worker leaves by itself after idleMs', async () => {
    configureNetnsWorkers({ idleMs: 150 });
    await whoAnswers(b);
    const inode = statSync(b).ino;
    expect(threadsIn(inode)).toHaveLength(1);
    const deadline = Date.now() + 3000;
    while (netnsWorkers().some((w) => w.inode === inode) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(netnsWorkers().map((w) => w.inode)).not.toContain(inode);
    for (let i = 0; i < 20 && threadsIn(inode).length; i++) await new Promise((r) => setTimeout(r, 50));
    expect(threadsIn(inode)).toEqual([]);
    expect(await whoAnswers(b)).toBe('b');
  });

  it('a path re-bound to a new netns gets a new worker, not the old netns', async () => {
    const c = scratch.netns('c');
    greeter(c, 'old');
    expect(await whoAnswers(c)).toBe('old');
    const oldInode = statSync(c).ino;
    // same name, new netns (the old one lives on while the greeter's listening socket holds it)
    sh('ip', ['netns', 'del', c.split('/').pop() as string]);
    sh('ip', ['netns', 'add', c.split('/').pop() as string]);
    sh('ip', ['-n', c.split('/').pop() as string, 'link', 'set', 'lo', 'up']);
    expect(statSync(c).ino).not.toBe(oldInode);
    greeter(c, 'new');
    expect(await whoAnswers(c)).toBe('new');
    // releasing by path stops the one for the current netns and, unless it already left by itself
    // (its path names another netns now), the one started for the old
    expect(releaseNetns(c)).toBeGreaterThanOrEqual(1);
    expect(threadsIn(oldInode)).toEqual([]);
  });

  it('a worker leaves when its netns is deleted (ip netns del), without waiting for idleMs', async () => {
    const d = scratch.netns('d');
    greeter(d, 'd');
    expect(await whoAnswers(d)).toBe('d');
    const inode = statSync(d).ino;
    expect(threadsIn(inode)).toHaveLength(1);
    sh('ip', ['netns', 'del', d.split('/').pop() as string]);
    const deadline = Date.now() + 4000;
    while (threadsIn(inode).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(threadsIn(inode)).toEqual([]);
    expect(netnsWorkers().map((w) => w.inode)).not.toContain(inode);
  });

  it('the request queue is bounded: with no pool and no room, connects fail with EAGAIN', async () => {
    releaseNetns(a);
    configureNetnsWorkers({ poolSize: 0, maxQueue: 0 });
    const err = await connectInNetns(a, { host: IP, port: PORT }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NativeError);
    expect(err).toMatchObject({ code: 'EAGAIN' });
    expect((err as Error).message).toMatch(/too many waiting/);
    configureNetnsWorkers({ maxQueue: 1024 });
    // without a pool every connect waits for the worker: still correct
    const answers = await Promise.all(Array.from({ length: 50 }, () => whoAnswers(a)));
    expect(new Set(answers)).toEqual(new Set(['a']));
    expect(netnsWorkers().find((w) => w.path === a)?.pooled).toBe(0);
  });

  it('a netns that cannot be opened or entered is named in the error', async () => {
    const missing = await connectInNetns('/run/netns/nm-kwork-absent', { host: IP, port: PORT }).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'ENOENT', object: '/run/netns/nm-kwork-absent' });
    const notNetns = await connectInNetns('/proc/self/ns/uts', { host: IP, port: PORT }).catch((e: unknown) => e);
    expect(notNetns).toBeInstanceOf(NativeError);
    expect(notNetns).toMatchObject({ code: 'EINVAL', op: 'enter netns' });
  });

  it('allowHalfOpen keeps the writable side open after the peer ends', async () => {
    const got = new Promise<string>((resolve) => {
      const srv = net.createServer({ allowHalfOpen: true }, (s) => {
        let data = '';
        s.on('error', () => undefined); // the second, plain client just resets
        s.on('data', (d: Buffer) => (data += d.toString()));
        s.on('end', () => resolve(data));
        s.end('bye'); // the server is done writing at once
      });
      srv.listen({ fd: listenInNetns(a, { host: IP, port: PORT + 1 }) });
      servers.push(srv);
    });
    const s = await connectInNetns(a, { host: IP, port: PORT + 1, allowHalfOpen: true });
    expect(s.allowHalfOpen).toBe(true);
    let greeting = '';
    s.on('data', (d: Buffer) => (greeting += d.toString()));
    await new Promise<void>((resolve) => s.once('end', () => resolve()));
    expect(greeting).toBe('bye');
    expect(s.writable).toBe(true);
    s.end('still here');
    expect(await got).toBe('still here');

    const plain = await connectInNetns(a, { host: IP, port: PORT + 1 });
    expect(plain.allowHalfOpen).toBe(false);
    plain.destroy();
  });
});
