// The waypoint's plain HTTP listeners bound how long a peer may hold a connection without using it:
// a connection that sends nothing, an h2c session with no open stream (also one that sent only the
// preface), counted in nodemesh_listener_timeouts_total{listener="http",kind="idle"} — while an
// HTTP/2 stream that stays open longer than the idle time (a slow response) is not cut.
import { connect as h2connect } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Waypoint } from '../../waypoint/waypoint';
import { backend, ControlPlane, freePort, LOOPBACK, startPlainWaypoint, type Backend } from './fixture';

const IDLE_MS = 300;

const closedWithin = (s: Socket): Promise<number> => {
  const t0 = Date.now();
  return new Promise((resolve) => {
    s.on('error', () => undefined);
    s.resume();
    s.once('close', () => resolve(Date.now() - t0));
  });
};

describe('waypoint downstream idle timeouts (plain listeners)', () => {
  const cp = new ControlPlane();
  let wp: Waypoint;
  let port: number;
  let web: Backend;

  async function idleCount(): Promise<number> {
    const m = /nodemesh_listener_timeouts_total\{listener="http",kind="idle"\} (\d+)/.exec(
      await wp.metrics.registry.getSingleMetricAsString('nodemesh_listener_timeouts_total'),
    );
    return m ? Number(m[1]) : 0;
  }

  beforeAll(async () => {
    await cp.start();
    // /slow answers after 3 idle times: a stream open (without traffic) longer than the idle time.
    web = await backend('web', (s, res) => {
      if (s.url !== '/slow') return false;
      setTimeout(() => res.end('slow'), IDLE_MS * 3).unref();
      return true;
    });
    port = await freePort();
    cp.serveAll('http', port, 'web', [web.port]);
    wp = await startPlainWaypoint(cp.address, [port], { downstreamTimeouts: { idleMs: IDLE_MS } });
  }, 20_000);
  afterAll(async () => {
    await wp?.stop();
    await cp.stop();
    await web?.close();
  });

  it('closes a connection that sends nothing after the idle time, and counts it', async () => {
    const before = await idleCount();
    const ms = await closedWithin(connect({ host: '127.0.0.1', port }));
    expect(ms).toBeGreaterThanOrEqual(IDLE_MS - 20);
    expect(ms).toBeLessThan(IDLE_MS + 1000);
    expect(await idleCount()).toBe(before + 1);
  });

  it('closes an h2c session with no open stream (GOAWAY), one that sent only the preface too; a slow open stream is not cut', async () => {
    const before = await idleCount();
    const session = h2connect(`http://127.0.0.1:${port}`);
    session.on('error', () => undefined);
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    // A response that takes 3 idle times: its stream stays open without traffic, and is served whole.
    const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const st = session.request({ ':path': '/slow', ':authority': 'web' });
      let status = 0;
      let body = '';
      st.on('response', (h) => (status = Number(h[':status'])));
      st.setEncoding('utf8').on('data', (c: string) => (body += c));
      st.on('end', () => resolve({ status, body }));
      st.on('error', reject);
    });
    expect(reply).toEqual({ status: 200, body: 'slow' });
    // Then no stream: GOAWAY (NO_ERROR) and the connection closed after the idle time.
    const t0 = Date.now();
    expect(await goaway).toBe(0);
    await closed;
    expect(Date.now() - t0).toBeLessThan(IDLE_MS + 1000);
    // The connection preface and nothing more: closed too.
    const raw = connect({ host: '127.0.0.1', port });
    raw.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    const ms = await closedWithin(raw);
    expect(ms).toBeLessThan(IDLE_MS + 2000);
    expect(await idleCount()).toBe(before + 2);
  });

  it('refuses a timeout setting out of range, naming it', () => {
    expect(() => new Waypoint({ name: 'wp', namespace: 'default', control: '127.0.0.1:1', ...LOOPBACK, downstreamTimeouts: { idleMs: 0 } })).toThrow(
      new RangeError('downstreamTimeouts.idleMs must be a whole number of milliseconds from 1 to 3600000, got 0'),
    );
  });
});
