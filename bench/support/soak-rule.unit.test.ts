import { describe, expect, it } from 'vitest';
import { checkpointTimes, defaultCheckpointMinutes, defaultWarmupSeconds, drift, floorDrift, minuteSeries, peakDrift } from '../soak';

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

  it('places checkpoints at the end of the warm-up, every interval and at the end', () => {
    expect(checkpointTimes(1800, 300, 300)).toEqual([300, 600, 900, 1200, 1500, 1800]);
    // a last interval under half of one is left to the end's
    expect(checkpointTimes(660, 30, 120)).toEqual([30, 150, 270, 390, 510, 660]);
    expect(checkpointTimes(600, 30, 120)).toEqual([30, 150, 270, 390, 510, 600]);
    expect(defaultCheckpointMinutes(30)).toBe(5);
    expect(defaultCheckpointMinutes(10)).toBe(2);
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
