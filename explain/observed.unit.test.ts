import { describe, expect, it } from 'vitest';
import { RecentRecords } from '../common/recent-records';
import { recentRecordFields } from '../node-proxy/telemetry/access-log';
import { demoMesh, IPS, snapshotOf } from '../test/explain/fixtures';
import { explainConnection } from './evaluate';
import { observedQueries, summarizeObserved, type ObservedRecordLike } from './observed';
import { formatExplanation } from './text';
import { World } from './world';

const world = new World(snapshotOf(demoMesh()));

describe('--observed', () => {
  it('asks for the pair under every name the proxies record it by (workload, identity, Service host, the authority a waypoint sees)', () => {
    const e = explainConnection(world, { from: 'demo/frontend', to: 'backend.demo:80' });
    const qs = observedQueries(e, 1_000_000).map((q) => `${q.get('from')} -> ${q.get('to')}`);
    expect(qs).toContain('demo/frontend -> backend.demo.svc.cluster.local');
    expect(qs).toContain('spiffe://cluster.local/ns/demo/sa/frontend -> backend.demo.svc.cluster.local:80');
    expect(qs).toContain(`spiffe://cluster.local/ns/demo/sa/frontend -> ${IPS.backendVip}:80`);
    expect(observedQueries(e, 1_000_000).every((q) => q.get('since') === String(1_000_000 - 300_000))).toBe(true);
  });

  it('merges what the proxies recorded (each record once, newest first) and counts allowed, denied and failed', () => {
    // records as a node proxy's ring serves them (its own record fields), and a waypoint's
    const ring = new RecentRecords('node-proxy');
    const peer = (ns: string, name: string, sa: string, address: string, port: number) => ({
      workload: { namespace: ns, name, canonicalName: name, canonicalRevision: 'latest' },
      identity: `spiffe://cluster.local/ns/${ns}/sa/${sa}`,
      address,
      port,
    });
    const record = {
      reporter: 'destination' as const,
      source: peer('demo', 'frontend', 'frontend', IPS.frontend, 40000),
      destination: peer('demo', 'tcp-echo', 'tcp-echo', IPS.tcpEcho, 9000),
      mtls: true,
    };
    ring.push(recentRecordFields(record, { requestBytes: 10, responseBytes: 10, durationMs: 1, responseFlags: '-' }), 1000);
    ring.push(
      recentRecordFields(record, {
        requestBytes: 0,
        responseBytes: 0,
        durationMs: 0,
        responseFlags: 'DENY',
        denyReason: 'denied by DENY policy demo/x (rule 1)',
        policy: 'demo/x',
      }),
      2000,
    );
    const nodeRecords = ring.page().records.map((r) => ({ ...r, proxy: 'node1' })) as ObservedRecordLike[];
    const waypoint: ObservedRecordLike = { seq: 1, time: 3000, proxy: 'wp', reporter: 'waypoint', status: 403, method: 'DELETE', src: {}, dst: {} };
    const o = summarizeObserved([nodeRecords, nodeRecords, [waypoint]]);
    expect(o.records.map((r) => (r as ObservedRecordLike).time)).toEqual([3000, 2000, 1000]);
    expect(o.summary).toBe('1 ok, 2 denied in the last 5 min (reported by waypoint, destination)');
    expect(summarizeObserved([]).summary).toBe('no records for this pair in the last 5 min');
    const text = formatExplanation({ ...explainConnection(world, { from: 'demo/frontend', to: 'tcp-echo.demo:9000' }), observed: o });
    expect(text).toContain('[destination] demo/frontend -> demo/tcp-echo:9000 DENY: denied by DENY policy demo/x (rule 1)');
    expect(text.split('\n').pop()).toMatch(/^ALLOWED: /);
  });
});
