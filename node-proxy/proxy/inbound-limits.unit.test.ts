// 15006's connect and idle timeouts, over real sockets on loopback: a captured plaintext connection
// handed to handlePlaintextInbound (passthrough: no mesh), the app an echo server. A peer that
// stops sending is cut after the idle timeout, both sides, and counted; one that keeps bytes
// flowing in either direction is not; a peer whose app side is not connected in time is reset and
// counted, and the late app connection is closed.
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { listenerTimeouts } from '../../common/listener-timeouts';
import { createLogger } from '../../common/log';
import { ConnectionTable } from '../connections/table';
import type { ProxyContext } from './context';
import { handlePlaintextInbound } from './inbound';
import { plaintextInboundLimits, PLAINTEXT_INBOUND_LIMITS, type PlaintextInboundLimits } from './inbound-limits';
import { ConnectionTracker } from './tracker';
import { scaled } from '../../test/support/speed';
import { until } from '../../test/support/until';

const silent = createLogger('test', 'silent');
const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
});

function listen(onConnection: (s: Socket) => void): Promise<AddressInfo> {
  const server = createServer({ allowHalfOpen: true }, onConnection);
  servers.push(server);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address() as AddressInfo)));
}

const dial = (port: number): Promise<Socket> =>
  new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });

interface App {
  /** Connections the app accepted, and whether each has closed. */
  readonly accepted: { closed: boolean }[];
}

/**
 * A 15006 listener in passthrough mode in front of an echo app (the app answers wherever it is
 * dialled, as the workload's netns would); `appDelayMs` holds each dial back that long.
 */
async function inbound(limits: PlaintextInboundLimits, appDelayMs = 0): Promise<{ port: number; app: App; metrics: () => Promise<string> }> {
  const app: App = { accepted: [] };
  const echo = await listen((s) => {
    const a = { closed: false };
    app.accepted.push(a);
    s.on('error', () => undefined);
    s.on('close', () => (a.closed = true));
    s.pipe(s);
  });
  const registry = new Registry();
  const ctx: ProxyContext = {
    sockets: {
      listen: () => Promise.reject(new Error('not used')),
      listenCaptured: () => {
        throw new Error('not used');
      },
      connect: async () => {
        await new Promise((r) => setTimeout(r, appDelayMs));
        return dial(echo.port);
      },
      connectRaw: () => Promise.reject(new Error('not used')),
      serverFd: () => -1,
      release: () => undefined,
    },
    originals: { take: () => undefined },
    tracker: new ConnectionTracker({ table: new ConnectionTable(), log: silent }),
    log: silent,
    inboundLimits: limits,
    listenerTimeouts: listenerTimeouts(registry),
  };
  const wl = { key: 'dp/echo', netnsPath: '/proc/self/ns/net', netnsCookie: 1n };
  const front = await listen((down) => handlePlaintextInbound(ctx, wl, down));
  return { port: front.port, app, metrics: () => registry.metrics() };
}

/** The client's socket: what it received and how it ended. */
function client(s: Socket): { readonly socket: Socket; readonly received: () => string; readonly ended: Promise<{ at: number; error?: string }> } {
  sockets.push(s);
  let data = '';
  s.setEncoding('utf8').on('data', (d: string) => (data += d));
  let error: string | undefined;
  s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
  // the proxy's FIN ('end': the client is half-open, as the proxy's clients are) or a reset
  const ended = new Promise<{ at: number; error?: string }>((resolve) => {
    const done = (): void => resolve({ at: Date.now(), error });
    s.once('end', done).once('close', done);
  });
  return { socket: s, received: () => data, ended };
}

const counted = (text: string, kind: string): number =>
  Number(new RegExp(`^nodemesh_listener_timeouts_total\\{listener="inbound",kind="${kind}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("the node proxy's 15006 limits", () => {
  // Timing under load: the idle timeout is scaled by the machine's measured speed (a loaded machine
  // stalls the test process for longer), the busy peer's pauses are measured (the proof that
  // traffic keeps a connection open holds only if every pause was shorter than the timeout, and the
  // message says how long they were), and what follows a close is awaited rather than slept for.
  const idleMs = Math.min(3_000, Math.max(400, scaled(400)));
  it(
    'closes a connection idle past the idle timeout, both sides, and counts it; traffic either way keeps it open',
    async () => {
      const { port, app, metrics } = await inbound({ connectTimeoutMs: 5_000 + 10 * idleMs, idleTimeoutMs: idleMs });
      const idle = client(await dial(port));
      const busy = client(await dial(port));
      const t0 = Date.now();
      idle.socket.write('hello');
      // the busy peer sends a byte every idleMs/4 for three idle timeouts' worth
      const writes = 12;
      let longestPause = 0;
      let lastWrite = 0;
      for (let i = 0; i < writes; i++) {
        const now = Date.now();
        if (i > 0) longestPause = Math.max(longestPause, now - lastWrite);
        lastWrite = now;
        busy.socket.write('x');
        await sleep(idleMs / 4);
      }
      const gone = await Promise.race([idle.ended, sleep(10 * idleMs).then(() => undefined)]);
      expect(gone, 'the idle connection was closed').toBeDefined();
      expect(idle.received()).toBe('hello');
      expect(gone!.at - t0).toBeGreaterThanOrEqual(idleMs - 50);
      const pauses = `the busy peer's longest pause between bytes: ${longestPause} ms; idle timeout ${idleMs} ms`;
      expect(busy.socket.destroyed, `the busy connection is still open (${pauses})`).toBe(false);
      await until('the echo of every busy byte', () => busy.received().length >= writes, 10 * idleMs);
      expect(busy.received(), pauses).toBe('x'.repeat(writes));
      await until("the app's side of the idle connection to close", () => app.accepted.some((a) => a.closed), 10 * idleMs);
      expect(
        app.accepted.filter((a) => a.closed),
        `only the idle connection's app side is closed (${pauses})`,
      ).toHaveLength(1);
      expect(counted(await metrics(), 'idle')).toBe(1);
      // the busy one goes idle too, and goes
      const busyGone = await Promise.race([busy.ended, sleep(10 * idleMs).then(() => undefined)]);
      expect(busyGone, 'the busy connection was closed once idle').toBeDefined();
      expect(busyGone!.at - lastWrite).toBeGreaterThanOrEqual(idleMs - 50);
      await until('the second idle timeout to be counted', async () => counted(await metrics(), 'idle') === 2, 10 * idleMs);
    },
    20_000 + 40 * idleMs,
  );

  it('resets a connection whose app side is not connected within the connect timeout, counts it, and closes the late app connection', async () => {
    const { port, app, metrics } = await inbound({ connectTimeoutMs: 200, idleTimeoutMs: 60_000 }, 1_000);
    const t0 = Date.now();
    const c = client(await dial(port));
    const end = await Promise.race([c.ended, sleep(3_000).then(() => undefined)]);
    expect(end, 'the client was cut').toBeDefined();
    expect(end!.error).toBe('ECONNRESET');
    expect(end!.at - t0).toBeLessThan(900);
    expect(counted(await metrics(), 'connect')).toBe(1);
    await sleep(1_200); // the dial completes after the client is gone
    expect(app.accepted).toHaveLength(1);
    expect(app.accepted[0]!.closed).toBe(true);
  });

  it('reads its limits from the environment, with defaults and a clear error', () => {
    expect(plaintextInboundLimits({})).toEqual(PLAINTEXT_INBOUND_LIMITS);
    expect(PLAINTEXT_INBOUND_LIMITS).toEqual({ connectTimeoutMs: 10_000, idleTimeoutMs: 3_600_000 });
    expect(plaintextInboundLimits({ NODEMESH_INBOUND_CONNECT_TIMEOUT_MS: '2500', NODEMESH_INBOUND_IDLE_TIMEOUT_MS: '0' })).toEqual({
      connectTimeoutMs: 2500,
      idleTimeoutMs: 0,
    });
    expect(() => plaintextInboundLimits({ NODEMESH_INBOUND_IDLE_TIMEOUT_MS: '1h' })).toThrow(/NODEMESH_INBOUND_IDLE_TIMEOUT_MS=1h/);
    expect(() => plaintextInboundLimits({ NODEMESH_INBOUND_CONNECT_TIMEOUT_MS: '0' })).toThrow(/≥ 1/);
  });
});
