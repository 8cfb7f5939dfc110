import { describe, expect, it } from 'vitest';
import { flatness, memoryParts, residentParts, settled } from './soak';

describe('soak summaries', () => {
  it('splits resident memory into heap, external and the rest', () => {
    const MiB = 1024 * 1024;
    expect(memoryParts({ rss: 60 * MiB, heapTotal: 20 * MiB, heapUsed: 15 * MiB, external: 4 * MiB, arrayBuffers: 1 * MiB })).toEqual({
      rss: 60,
      heap: 20,
      heapUsed: 15,
      external: 4,
      other: 36,
    });
  });

  it('splits resident memory into file-backed and anonymous from smaps_rollup', () => {
    const rollup =
      '00400000-7ffd [rollup]\nRss:               81920 kB\nPss:               50000 kB\nAnonymous:         40960 kB\nAnonHugePages:         0 kB\n';
    expect(residentParts(rollup)).toEqual({ fileMiB: 40, anonMiB: 40 });
  });

  it('judges a series flat when every sample after the warm-up is within ±5 % of the median', () => {
    const series = (values: number[]) => values.map((value, i) => ({ at: i * 10, value }));
    // the warm-up's growth (first 30 s) does not count
    const ok = flatness(series([40, 50, 60, 61, 62, 60, 63]), 30);
    expect(ok).toMatchObject({ n: 4, median: 61.5, min: 60, max: 63, flat: true });
    const leak = flatness(series([60, 60, 60, 64, 68, 72, 76]), 30);
    expect(leak.flat).toBe(false);
    expect(leak.worstPct).toBeCloseTo((100 * 6) / 70, 5);
    expect(flatness(series([60]), 0)).toMatchObject({ n: 1, flat: false });
  });

  it('calls memory settled once the last readings of every proxy stay within the tolerance', () => {
    expect(
      settled([
        [70, 66.1, 66.0, 66.2],
        [63, 63.1, 63],
      ]),
    ).toBe(true);
    expect(
      settled([
        [70, 66.1, 66.0, 66.2],
        [66, 64.5, 63],
      ]),
    ).toBe(false); // one still giving back
    expect(settled([[66, 66]])).toBe(false); // too few readings to tell
    expect(settled([])).toBe(false);
  });
});
