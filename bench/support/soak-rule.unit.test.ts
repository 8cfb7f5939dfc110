import { describe, expect, it } from 'vitest';
import { defaultWarmupSeconds, drift, floorDrift } from '../soak';

describe("bench/soak's rule", () => {
  it('judges means of the first and last third; the floor shows a sawtooth apart from a leak', () => {
    // a heap sawtooth: the floor stays, spikes land in the last third
    const saw = [120, 141, 121, 120, 122, 120, 120, 182, 156, 120, 176, 121];
    expect(drift(saw).changePct).toBeGreaterThan(5);
    expect(floorDrift(saw).changePct).toBe(0);
    // a leak: the floor rises
    const leak = [120, 121, 122, 124, 126, 128, 130, 132, 134, 136, 138, 140];
    expect(floorDrift(leak).changePct).toBeGreaterThan(5);
    expect(defaultWarmupSeconds(30)).toBe(300);
    expect(defaultWarmupSeconds(2)).toBe(30);
  });
});
