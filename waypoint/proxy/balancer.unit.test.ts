import { describe, expect, it } from 'vitest';
import type { OutlierPolicy, UpstreamEndpoint } from '../config/clusters';
import { Balancer } from './balancer';

const ep = (port: number, health: UpstreamEndpoint['health'] = 'healthy'): UpstreamEndpoint => ({ address: '127.0.0.1', port, weight: 1, health });
const outlier: OutlierPolicy = {
  consecutive5xx: 3,
  consecutiveGatewayFailure: 0,
  enforcing5xx: 1,
  enforcingGatewayFailure: 0,
  baseEjectionMs: 1000,
  maxEjectionMs: 300_000,
  maxEjectionPercent: 50,
  intervalMs: 10_000,
};

describe('Balancer', () => {
  it('round-robins over endpoints and skips degraded ones while healthy ones exist', () => {
    const b = new Balancer('ROUND_ROBIN', undefined);
    b.setEndpoints([ep(1), ep(2), ep(3, 'degraded')]);
    expect([1, 2, 3, 4].map(() => b.pick()!.endpoint.port)).toEqual([1, 2, 1, 2]);
  });
  it('round robin honours endpoint weights, interleaved, and stays exact over every window', () => {
    const b = new Balancer('ROUND_ROBIN', undefined);
    b.setEndpoints([{ ...ep(1), weight: 3 }, ep(2), { ...ep(3), weight: 2 }]);
    const picks = Array.from({ length: 60 }, () => b.pick()!.endpoint.port);
    for (let w = 0; w < 60; w += 6) {
      const win = picks.slice(w, w + 6);
      expect([1, 2, 3].map((p) => win.filter((x) => x === p).length)).toEqual([3, 1, 2]);
    }
    // smooth: the heavy endpoint is never picked three times in a row
    expect(picks.join(',')).not.toContain('1,1,1');
  });
  it('least-request prefers the endpoint with fewer active requests', () => {
    let i = 0;
    const seq = [0, 0.6];
    const b = new Balancer('LEAST_REQUEST', undefined, Date.now, () => seq[i++ % 2]!);
    b.setEndpoints([ep(1), ep(2)]);
    b.pick()!.active = 5; // endpoint 1 busy
    expect(b.pick()!.endpoint.port).toBe(2);
  });
  it('ejects after consecutive 5xx for base × times ejected, within max_ejection_percent, and lets it back', () => {
    let now = 0;
    const b = new Balancer(
      'ROUND_ROBIN',
      outlier,
      () => now,
      () => 0,
    );
    b.setEndpoints([ep(1), ep(2), ep(3), ep(4)]);
    const [s1, s2, s3] = [b.pick()!, b.pick()!, b.pick()!];
    expect(b.record(s1, 503)).toBeUndefined();
    expect(b.record(s1, 200)).toBeUndefined(); // a success resets the count
    b.record(s1, 500);
    b.record(s1, 'local-failure');
    expect(b.record(s1, 502)).toMatchObject({ kind: 'ejected', untilMs: 1000 });
    for (let k = 0; k < 8; k++) expect(b.pick()!.endpoint.port).not.toBe(1);
    for (let k = 0; k < 3; k++) b.record(s2, 500);
    // 2 of 4 ejected = 50%: no third ejection.
    for (let k = 0; k < 3; k++) expect(b.record(s3, 500)).toBeUndefined();
    now = 1001;
    expect(
      b
        .snapshot()
        .filter((x) => x.ejected)
        .map((x) => x.endpoint),
    ).toEqual([]);
    for (let k = 0; k < 3; k++) b.record(s1, 500);
    expect(s1.ejectedUntil).toBe(1001 + 2000); // second ejection lasts twice as long
  });
  it('uses every endpoint (panic) when all are ejected, and keeps state across EDS updates', () => {
    const b = new Balancer(
      'ROUND_ROBIN',
      { ...outlier, maxEjectionPercent: 100 },
      () => 0,
      () => 0,
    );
    b.setEndpoints([ep(1)]);
    const s = b.pick()!;
    for (let k = 0; k < 3; k++) b.record(s, 503);
    expect(b.pick()!.endpoint.port).toBe(1);
    b.setEndpoints([ep(1), ep(2)]);
    expect(b.snapshot()).toEqual([
      { endpoint: '127.0.0.1:1', active: 0, ejected: true, consecutive5xx: 0, hbone: false },
      { endpoint: '127.0.0.1:2', active: 0, ejected: false, consecutive5xx: 0, hbone: false },
    ]);
  });
});
