import { describe, expect, it } from 'vitest';
import { parseSize, percentile, summarize } from './stats';

describe('sample client statistics', () => {
  it('nearest-rank percentiles', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile(xs, 100)).toBe(100);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBe(0);
  });
  it('summarizes unsorted samples', () => {
    expect(summarize([3, 1, 2])).toEqual({ count: 3, min: 1, p50: 2, p99: 3, max: 3, mean: 2 });
    expect(summarize([]).count).toBe(0);
  });
  it('parses sizes with binary suffixes and refuses junk', () => {
    expect(parseSize('0')).toBe(0);
    expect(parseSize('64k')).toBe(65536);
    expect(parseSize('3MiB')).toBe(3 * 1024 * 1024);
    expect(parseSize('1G')).toBe(1024 ** 3);
    expect(() => parseSize('-1')).toThrow(/not understood/);
    expect(() => parseSize('1x')).toThrow();
  });
});
