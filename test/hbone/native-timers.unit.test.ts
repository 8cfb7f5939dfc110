// The native engine's timers run when a connection's deadline is due, not on a fixed period
// (docs/hbone.md, "Wake-ups"): an engine thread whose connections idle sleeps without waking, and
// every deadline still fires — the keepalive PING finds a peer gone dark, PINGs that are answered
// cut nothing, and a server connection idle past its limit is closed.
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { readThreads } from '../../bench/support/proc-threads';
import { nativeHboneActive, nativeHboneAvailable } from '../../native/hbone';
import { NativeHboneClient } from '../../native/hbone-client';
import { scaled } from '../support/speed';
import { echo, eventually, quietLogger } from './fixture';
import { nativeServer, nativeTunnel } from './native-fixture';
import { relay, type Relay } from './relay';

const run = nativeHboneAvailable() ? describe : describe.skip;

/** The engine threads' wake-ups so far (voluntary context switches of this process's nm-hbone-* threads). */
function engineWakeups(): { threads: number; wakeups: number } {
  const engine = readThreads(process.pid).filter((t) => t.name.startsWith('nm-hbone'));
  return { threads: engine.length, wakeups: engine.reduce((a, t) => a + t.voluntary, 0) };
}

run('native HBONE engine timers', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function setUp(clientOptions: ConstructorParameters<typeof NativeHboneClient>[0] = {}, serverOptions: Parameters<typeof nativeServer>[2] = {}) {
    const s = await nativeServer(echo, undefined, serverOptions);
    cleanup.push(() => s.close());
    const client = new NativeHboneClient({ logger: quietLogger, ...clientOptions });
    cleanup.push(() => client.close(0));
    return { s, client };
  }

  it('leaves its threads asleep while a connection idles (no periodic tick)', async () => {
    const { s, client } = await setUp();
    const t = await nativeTunnel(client, s);
    cleanup.push(() => void t.app.destroy());
    t.app.write('hi');
    await once(t.app, 'data');
    await sleep(200);
    const before = engineWakeups();
    await sleep(1500);
    const after = engineWakeups();
    expect(before.threads).toBeGreaterThan(0);
    // the keepalive is 10 s away: nothing is due. A 100 ms tick woke each thread 15 times here.
    expect(after.wakeups - before.wakeups).toBeLessThanOrEqual(2);
  });

  it('still PINGs on time: answered PINGs keep an idle tunnel, a peer gone dark is dropped after the PING timeout', async () => {
    const { s, client } = await setUp({ keepaliveIntervalMs: 200, pingTimeoutMs: scaled(400) });
    const r: Relay = await relay(Number(s.openOptions().destination.split(':')[1]));
    cleanup.push(() => r.close());
    const t = await nativeTunnel(client, { openOptions: (extra = {}) => s.openOptions({ destination: `127.0.0.1:${r.port}`, ...extra }) });
    cleanup.push(() => void t.app.destroy());
    let ended = false;
    void t.ended.then(() => (ended = true));
    t.app.write('hi');
    await once(t.app, 'data');
    await sleep(1000); // five PINGs, each answered
    expect(ended).toBe(false);
    r.blackhole();
    const started = Date.now();
    const result = await t.ended;
    expect(result.clean).toBe(false);
    expect(result.reason).toMatch(/did not answer an HTTP\/2 PING/);
    // the next PING (within 200 ms) and its timeout: well under the 3 s default
    expect(Date.now() - started).toBeLessThan(200 + scaled(400) + scaled(1500));
  });

  it("closes a server connection idle past the server's idle timeout", async () => {
    // the connections of the tests before are closed by now (this file's process has no others)
    expect(await eventually(() => nativeHboneActive().connections === 0, scaled(4000))).toBe(true);
    const { s, client } = await setUp({}, { idleTimeoutMs: 300 });
    const t = await nativeTunnel(client, s);
    t.app.end('hi');
    await t.ended;
    expect(nativeHboneActive().connections).toBe(2); // the client's and the server's ends, both open
    // idle 300 ms, then GOAWAY and the close 1 s after it: both ends are gone
    expect(await eventually(() => nativeHboneActive().connections === 0, scaled(4000))).toBe(true);
  });
});
