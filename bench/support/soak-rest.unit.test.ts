import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { drift } from '../soak';
import { usage } from './resilience';
import { establishedSockets, judgeRest, parseProcNetTcp, settle, staleConnections, strayKinds, type RestPoint } from './soak-rest';

// A real process whose fds follow its load ("load N" opens N, "rest" closes them, as a proxy's
// connections come and go) and that can leak ("leak" opens one it never closes). Its fds are read
// from /proc as the soak reads the mesh's.
const CHILD = `
const fs = require('node:fs');
const held = [], leaked = [];
process.stdin.setEncoding('utf8').on('data', (d) => {
  for (const c of d.split('\\n').filter(Boolean)) {
    if (c.startsWith('load ')) for (let i = 0; i < Number(c.slice(5)); i++) held.push(fs.openSync('/dev/null', 'r'));
    // closed a little later, as connections drain after the requests stop
    else if (c === 'rest') setTimeout(() => { while (held.length) fs.closeSync(held.pop()); }, 150);
    else if (c === 'leak') leaked.push(fs.openSync('/dev/null', 'r'));
    process.stdout.write('ok\\n');
  }
});
`;

const children: ChildProcessWithoutNullStreams[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

function fdHolder() {
  const child = spawn(process.execPath, ['-e', CHILD]);
  children.push(child);
  const acks: (() => void)[] = [];
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    for (const _ of d.split('\n').filter(Boolean)) acks.shift()?.();
  });
  const send = (cmd: string): Promise<void> =>
    new Promise((resolve) => {
      acks.push(resolve);
      child.stdin.write(`${cmd}\n`);
    });
  return { pid: child.pid as number, send };
}

/** Six checkpoints of a process under a rising load: fds under load, then the soak's reading at rest. */
async function soak(leakPerCheckpoint: number) {
  const p = fdHolder();
  await p.send('load 0');
  const underLoad: number[] = [];
  const rest: RestPoint[] = [];
  for (let i = 0; i < 6; i++) {
    await p.send(`load ${10 + 15 * i}`);
    for (let k = 0; k < leakPerCheckpoint; k++) await p.send('leak');
    underLoad.push(usage(p.pid)!.fds);
    await p.send('rest');
    const { value, settled } = await settle(
      () => usage(p.pid)!.fds,
      (a, b) => a === b,
      { intervalMs: 100, stableReads: 3, timeoutMs: 5000 },
    );
    rest.push({ at: i * 60, pid: p.pid, fds: value, connections: 0, rssMiB: 0, settled, stale: 0 });
  }
  return { underLoad, rest };
}

describe("bench/soak's leak rule at rest", () => {
  it('is not fooled by fds that follow the load, and fails a process that leaks one fd per checkpoint', async () => {
    const clean = await soak(0);
    // under load the fds rise with the load: a rule on them would call this a leak
    expect(drift(clean.underLoad).changePct).toBeGreaterThan(50);
    const ok = judgeRest(clean.rest);
    expect(ok.unsettled).toBe(0);
    expect(ok).toMatchObject({ n: 6, flat: true, why: [] });

    const leaky = await soak(1);
    const v = judgeRest(leaky.rest);
    // the lower of the first two checkpoints against the lower of the last two: 4 of the 5 leaked
    expect(v.strayFds.last - v.strayFds.first).toBe(4);
    expect(v.flat).toBe(false);
    expect(v.why).toEqual(['fds at rest']);
  }, 30_000);

  it('leaves established connections out of the stray fds; a record idle between checkpoints is stale', () => {
    const at = (i: number, fds: number, connections: number, stale = 0): RestPoint => ({
      at: i * 300,
      pid: 7,
      fds,
      connections,
      rssMiB: 70,
      settled: true,
      stale,
    });
    // 40 stray fds each time, whatever the connections open at rest
    expect(judgeRest([at(0, 42, 2), at(1, 50, 10), at(2, 41, 1)]).flat).toBe(true);
    // three more fds that are no connection (sockets left in CLOSE_WAIT, files, pipes)
    expect(judgeRest([at(0, 42, 2), at(1, 45, 2)]).why).toEqual(['fds at rest']);
    // a record that outlived its socket, or a connection leaked with its record and fd both: no byte moved
    const before = [
      { id: 1, bytesSent: 10, bytesReceived: 20 },
      { id: 2, bytesSent: 5, bytesReceived: 5 },
    ];
    const now = [
      { id: 1, bytesSent: 10, bytesReceived: 20 },
      { id: 2, bytesSent: 9, bytesReceived: 5 },
      { id: 3, bytesSent: 0, bytesReceived: 0 },
    ];
    expect(staleConnections(before, now).map((c) => c.id)).toEqual([1]);
    expect(judgeRest([at(0, 42, 2), at(1, 43, 3, 1)]).why).toEqual(['stale connections']);
  });

  it('compares the lower of the first two checkpoints with the lower of the last two: a reading caught mid-close is not a leak, a rise is', () => {
    const series = (fds: number[]) => fds.map((f, i): RestPoint => ({ at: i * 300, pid: 7, fds: f, connections: 0, rssMiB: 70, settled: true, stale: 0 }));
    // node2 in a 6-min run: 34 sockets still closing at the second checkpoint
    expect(judgeRest(series([47, 81, 47, 47])).flat).toBe(true);
    expect(judgeRest(series([47, 47, 47, 47, 81, 47])).flat).toBe(true);
    // a slow leak over a base of 47: +3 (6.4 %)
    expect(judgeRest(series([47, 48, 49, 49, 50, 51])).why).toEqual(['fds at rest']);
    // fewer than four checkpoints: first against last
    expect(judgeRest(series([47, 81, 50])).strayFds).toMatchObject({ first: 47, last: 50 });
  });

  it('judges the live heap and the RSS after a full GC, and needs two checkpoints of one process', () => {
    const at = (pid: number, heap: number, rss: number): RestPoint => ({
      at: 0,
      pid,
      fds: 40,
      connections: 0,
      rssMiB: 100,
      settled: true,
      stale: 0,
      heapUsedMiB: heap,
      rssAfterGcMiB: rss,
    });
    expect(judgeRest([at(7, 24.4, 79), at(7, 25.4, 81)]).flat).toBe(true);
    expect(judgeRest([at(7, 24.4, 79), at(7, 25.7, 81)]).why).toEqual(['live heap']);
    expect(judgeRest([at(7, 24.4, 79), at(7, 24.4, 84)]).why).toEqual(['RSS after GC']);
    expect(judgeRest([at(7, 24.4, 79), at(8, 24.4, 79)]).why).toEqual(['restarted']);
    expect(judgeRest([at(7, 24.4, 79)]).why).toEqual(['fewer than two checkpoints']);
  });
});

describe("bench/soak's count of established connections", () => {
  const fdTargets = (): string[] =>
    readdirSync('/proc/self/fd').flatMap((fd) => {
      try {
        return [readlinkSync(`/proc/self/fd/${fd}`)];
      } catch {
        return [];
      }
    });
  const tcp = () => parseProcNetTcp(readFileSync('/proc/net/tcp', 'utf8') + readFileSync('/proc/net/tcp6', 'utf8'));
  it('counts a live connection as held for a peer, and a socket left open after its peer closed (CLOSE_WAIT) as stray', async () => {
    const accepted: Socket[] = [];
    // half-open allowed: Node does not end the accepted socket by itself when its peer leaves
    const server = createServer({ allowHalfOpen: true }, (s) => void accepted.push(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      // only the fds opened here are judged (the worker holds others that come and go)
      const before = new Set(fdTargets());
      const mine = (): string[] => fdTargets().filter((t) => !before.has(t));
      const client = connect(port, '127.0.0.1');
      await new Promise<void>((r) => client.once('connect', r));
      await expect.poll(() => accepted.length).toBe(1);
      // both ends live in this process: two sockets, both established, none stray
      expect(mine().filter((t) => t.startsWith('socket:'))).toHaveLength(2);
      expect(establishedSockets(mine(), tcp())).toBe(2);
      // the peer leaves; the server side "forgets" to close its socket: a leaked fd in CLOSE_WAIT
      accepted[0]!.on('end', () => undefined).on('error', () => undefined);
      client.destroy();
      await expect.poll(() => mine().filter((t) => t.startsWith('socket:')).length).toBe(1);
      await expect.poll(() => tcp().get(/\d+/.exec(mine().find((t) => t.startsWith('socket:'))!)![0])).toBe('08');
      expect(establishedSockets(mine(), tcp())).toBe(0);
      expect(strayKinds(mine(), tcp())).toEqual({ 'tcp CLOSE_WAIT': 1 });
    } finally {
      for (const s of accepted) s.destroy();
      server.close();
    }
  });
});
