// The observer reading real node proxy metrics endpoints (node-proxy/telemetry: the registry and
// /recent the node proxy serves on 15020) over HTTP: edges with denials, mTLS and bytes, rates
// between polls, recent records by pair; a proxy that is down or never answers costs one timeout
// and is reported, and the others are still read.
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { Observer, type ConnectedClient } from '../../control/observe';
import { NodeProxyTelemetry, startMetricsServer, type ConnectionRecord, type MetricsServer } from '../../node-proxy/telemetry';
import { quiet } from './fixture';

const web = { name: 'web-1', namespace: 'shop', canonicalName: 'web', canonicalRevision: 'v1' };
const db = { name: 'db-0', namespace: 'shop', canonicalName: 'db', canonicalRevision: 'v1' };
const toDb: ConnectionRecord = {
  reporter: 'destination',
  source: { workload: web, identity: 'spiffe://cluster.local/ns/shop/sa/web', address: '127.0.0.1', port: 40000 },
  destination: { workload: db, identity: 'spiffe://cluster.local/ns/shop/sa/db', address: '127.0.0.1', port: 5432 },
  service: { name: 'db', namespace: 'shop', hostname: 'db.shop.svc.cluster.local' },
  mtls: true,
};
const outsider: ConnectionRecord = {
  reporter: 'destination',
  source: { address: '127.0.0.9', port: 40001 },
  destination: { workload: web, identity: 'spiffe://cluster.local/ns/shop/sa/web', address: '127.0.0.1', port: 8080 },
  mtls: false,
};

const closers: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

const client = (nodeId: string, port: number): ConnectedClient => ({
  api: 'delta',
  nodeId,
  peer: `127.0.0.1:${port}`,
  view: 'proxyless',
  types: { 'type.googleapis.com/nodemesh.workload.v1.Address': {} },
});

describe('the observer', () => {
  it('reads node proxies: edges (allowed, denied, mTLS, bytes, rate), recent records by pair; a dead or silent proxy is reported, not waited for', async () => {
    const t = new NodeProxyTelemetry({ accessLog: quiet() });
    const m: MetricsServer = await startMetricsServer(t.registry, { host: '127.0.0.1', port: 0, recent: t.recent });
    closers.push(() => m.close());
    // A proxy that accepts and never answers, and a port nobody listens on.
    const held = new Set<import('node:net').Socket>();
    const silent: Server = createServer((s) => void held.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    closers.push(
      () =>
        new Promise<void>((r) => {
          for (const s of held) s.destroy();
          silent.close(() => r());
        }),
    );
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', () => r()));
    const deadPort = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));

    // Each target has its own port here; the observer is told the port per client through the peer.
    const targets = [
      { id: 'node1', port: m.port },
      { id: 'node2', port: (silent.address() as AddressInfo).port },
      { id: 'node3', port: deadPort },
    ];
    // The silent and dead proxies get a short limit (what is tested is that they cost no more);
    // the answering one a long one, so a loaded machine does not turn its answer into a timeout.
    const observers = targets.map(
      (x) => new Observer({ clients: () => [client(x.id, 1)], port: x.port, timeoutMs: x.id === 'node1' ? 10_000 : 300, intervalMs: 1000, log: quiet() }),
    );
    const [good, hung, down] = observers as [Observer, Observer, Observer];

    for (let i = 0; i < 3; i++) t.open(toDb).close({ requestBytes: 100, responseBytes: 1000 });
    t.denied(outsider, { policy: 'shop/default', reason: 'PeerAuthentication shop/default requires mutual TLS (STRICT)' });
    const firstPollStart = Date.now();
    await good.pollOnce();
    const firstPollEnd = Date.now();
    const e1 = new Map(good.edges().map((e) => [e.id, e]));
    expect(e1.get('wl:shop/web-1->svc:shop/db')).toMatchObject({
      reporter: 'destination',
      connections: 3,
      denied: 0,
      bytesIn: 300,
      bytesOut: 3000,
      mtlsRatio: 1,
      rate: 0,
    });
    expect(e1.get('unknown->wl:shop/web-1')).toMatchObject({ connections: 1, denied: 1, mtlsRatio: 0 });

    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < 4; i++) t.open(toDb).close({ requestBytes: 1, responseBytes: 1 });
    const secondPollStart = Date.now();
    await good.pollOnce();
    const secondPollEnd = Date.now();
    expect(good.proxyObservations()[0]).toMatchObject({ error: undefined });
    const e2 = good.edges().find((e) => e.id === 'wl:shop/web-1->svc:shop/db')!;
    expect(e2.connections).toBe(7);
    // 4 connections between the two polls: the rate is 4 over the time between them, which the
    // test brackets (it is ~0.2 s on an idle machine, more on a loaded one)
    expect(e2.rate).toBeGreaterThanOrEqual(4 / ((secondPollEnd - firstPollStart) / 1000));
    expect(e2.rate).toBeLessThanOrEqual(4 / ((secondPollStart - firstPollEnd) / 1000));

    expect(good.recentRecords({ from: 'shop/web-1', to: 'db.shop' }).length).toBe(7);
    expect(good.recentRecords({ to: 'shop/web-1' })).toMatchObject([
      { response_flags: 'DENY', policy: 'shop/default', proxy: 'node-proxy/node1', proxyKind: 'node-proxy' },
    ]);
    expect(good.recentRecords({ port: 5432, limit: 2 }).map((r) => r.seq)).toEqual([7, 8]);
    expect(good.proxyObservations()[0]).toMatchObject({ error: undefined });

    const t0 = Date.now();
    await Promise.all([hung.pollOnce(), down.pollOnce()]);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(hung.proxyObservations()[0]!.error).toMatch(/no answer within 300 ms/);
    expect(down.proxyObservations()[0]!.error).toMatch(/ECONNREFUSED/);
    expect(hung.edges()).toEqual([]);
  });

  it('keeps a bounded number of records however many proxies answer', async () => {
    const t = new NodeProxyTelemetry({ accessLog: quiet() });
    const m = await startMetricsServer(t.registry, { host: '127.0.0.1', port: 0, recent: t.recent });
    closers.push(() => m.close());
    for (let i = 0; i < 300; i++) t.open(toDb).close({ requestBytes: 1, responseBytes: 1 });
    const o = new Observer({ clients: () => [client('n', 1)], port: m.port, maxRecords: 100, log: quiet() });
    await o.pollOnce();
    expect(o.recentRecords({ limit: 1000 })).toHaveLength(100);
    expect(o.recentRecords({ limit: 1000 }).at(-1)!.seq).toBe(300);
  });
});
