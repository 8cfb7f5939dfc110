import { describe, expect, it } from 'vitest';
import { formatRatio, formatSpread, ratio, roundOrder, spread } from './rounds';

describe('figures over interleaved rounds', () => {
  it('takes the median and the range, ignoring non-finite samples', () => {
    expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3, n: 3 });
    expect(spread([4, 1, 2, 3])).toEqual({ median: 2.5, min: 1, max: 4, n: 4 });
    expect(spread([5, Number.NaN])).toEqual({ median: 5, min: 5, max: 5, n: 1 });
    expect(spread([]).n).toBe(0);
    expect(formatSpread(spread([3, 1, 2]), 1)).toBe('2.0 (1.0–3.0)');
    expect(formatSpread(spread([2]), 2)).toBe('2.00');
    expect(formatSpread(spread([]), 2)).toBe('-');
  });

  it('gives the ratio of the medians and the range of the per-round ratios', () => {
    // one noisy round (both modes slowed down together) moves the medians but not the paired ratio
    const r = ratio([10, 2, 12], [5, 1, 6]);
    expect(r.ofMedians).toBe(2);
    expect(r.perRound).toEqual({ median: 2, min: 2, max: 2, n: 3 });
    expect(formatRatio(r)).toBe('2.00x (2.00–2.00)');
    expect(formatRatio(ratio([3], [2]))).toBe('1.50x');
    expect(formatRatio(ratio([3], [0]))).toBe('-');
    expect(ratio([3, 4], [0, 2]).perRound).toEqual({ median: 2, min: 2, max: 2, n: 1 });
  });

  it('rotates the order of the modes from round to round', () => {
    const m = ['mesh', 'direct', 'stunnel'];
    expect(roundOrder(m, 0)).toEqual(['mesh', 'direct', 'stunnel']);
    expect(roundOrder(m, 1)).toEqual(['direct', 'stunnel', 'mesh']);
    expect(roundOrder(m, 2)).toEqual(['stunnel', 'mesh', 'direct']);
    expect(roundOrder(m, 3)).toEqual(m);
    expect(roundOrder([], 2)).toEqual([]);
  });
});
