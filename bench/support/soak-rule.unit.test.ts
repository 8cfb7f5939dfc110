import { describe, expect, it } from 'vitest';
import { defaultWarmupSeconds, drift, floorDrift, judge, minuteSeries, peakDrift } from '../soak';

const repeat = (xs: number[], n: number): number[] => Array.from({ length: n }, () => xs).flat();

describe("bench/soak's rule", () => {
  it('judges means of the first and last third; the floor shows a sawtooth apart from a leak', () => {
    // a heap sawtooth: the floor stays, spikes land in the last third
    const saw = [120, 141, 121, 120, 122, 120, 120, 182, 156, 120, 176, 121];
    expect(drift(saw).changePct).toBeGreaterThan(5);
    expect(floorDrift(saw).changePct).toBe(0);
    expect(peakDrift(saw).changePct).toBeGreaterThan(20);
    // a leak: the floor rises
    const leak = [120, 121, 122, 124, 126, 128, 130, 132, 134, 136, 138, 140];
    expect(floorDrift(leak).changePct).toBeGreaterThan(5);
    expect(defaultWarmupSeconds(30)).toBe(300);
    expect(defaultWarmupSeconds(2)).toBe(30);
  });

  it('passes a process only when mean and floor of RSS and mean of fds hold, and it never restarted', () => {
    const fds = repeat([40, 41], 30);
    // the same sawtooth all along: flat
    expect(judge({ rss: repeat([120, 150, 180], 20), fds }, false)).toMatchObject({ flat: true, why: [] });
    // the sawtooth's peaks grow (GC behaviour, floor flat): the mean fails, the floor does not excuse it
    const growing = [...repeat([120, 150, 180], 10), ...repeat([120, 170, 220], 10)];
    expect(judge({ rss: growing, fds: repeat([40], growing.length) }, false)).toMatchObject({ flat: false, why: ['mean RSS'] });
    // a leak under a sawtooth whose peaks shrink: the mean barely moves, the floor catches it
    const hidden = [...repeat([120, 180], 15), ...repeat([130, 165], 15)];
    expect(Math.abs(drift(hidden).changePct)).toBeLessThanOrEqual(5);
    expect(judge({ rss: hidden, fds: repeat([40], hidden.length) }, false)).toMatchObject({ flat: false, why: ['RSS floor'] });
    // fds that grow, a restart, too few samples
    expect(judge({ rss: repeat([100], 30), fds: [...repeat([40], 15), ...repeat([50], 15)] }, false).why).toEqual(['fds']);
    expect(judge({ rss: repeat([100], 30), fds: repeat([40], 30) }, true).why).toEqual(['restarted']);
    expect(judge({ rss: [100, 100], fds: [40, 40] }, false).why).toEqual(['too few samples']);
  });

  it('summarises the traffic per minute: answered requests per second and the worst p99', () => {
    const t0 = 1_000_000;
    const seconds = [
      { at: t0 + 1_000, n: 990, p50: 2, p99: 9 },
      { at: t0 + 2_000, n: 1010, p50: 2, p99: 14 },
      { at: t0 + 61_000, n: 700, p50: 5, p99: 40 },
    ];
    expect(minuteSeries(seconds, t0)).toBe('1000/14 700/40');
  });
});
