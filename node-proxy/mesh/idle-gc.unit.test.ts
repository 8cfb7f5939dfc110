// When the node proxy gives its unused heap back: once per quiet spell after activity, never while
// connections keep coming, not again until something changed, and only when there is slack.
import { describe, expect, it } from 'vitest';
import { getHeapSpaceStatistics } from 'node:v8';
import { fullCollector, IdleGcPolicy, memoryReducer } from './idle-gc';

const MiB = 1 << 20;
const policy = (): IdleGcPolicy => new IdleGcPolicy({ quietMs: 10_000, slackBytes: MiB, growthBytes: 2 * MiB });
const slack = { total: 16 * MiB, used: 11 * MiB };

describe('IdleGcPolicy', () => {
  it('collects once, quietMs after the last new connection, and not again while nothing changes', () => {
    const p = policy();
    expect(p.tick(0, 5, slack)).toBe(false); // first look: activity
    expect(p.tick(5_000, 5, slack)).toBe(false); // quiet for 5 s only
    expect(p.tick(10_000, 5, slack)).toBe(true);
    p.collected({ total: 13 * MiB, used: 11 * MiB });
    for (let t = 15_000; t < 120_000; t += 5_000) expect(p.tick(t, 5, { total: 13 * MiB, used: 11.5 * MiB })).toBe(false);
  });

  it('never collects while connections keep coming', () => {
    const p = policy();
    for (let t = 0, n = 0; t < 120_000; t += 5_000, n += 100) expect(p.tick(t, n, slack)).toBe(false);
  });

  it('collects again after the next burst ends', () => {
    const p = policy();
    p.tick(0, 0, slack);
    expect(p.tick(10_000, 0, slack)).toBe(true);
    p.collected({ total: 12 * MiB, used: 11 * MiB });
    expect(p.tick(15_000, 400, slack)).toBe(false); // a burst
    expect(p.tick(20_000, 400, slack)).toBe(false);
    expect(p.tick(25_000, 400, slack)).toBe(true); // 10 s after it
  });

  it('counts heap growth without new connections (an enrolment wave) as activity, and collects once it stops', () => {
    const p = policy();
    p.tick(0, 0, slack);
    expect(p.tick(10_000, 0, slack)).toBe(true);
    p.collected({ total: 12 * MiB, used: 10 * MiB });
    expect(p.tick(15_000, 0, { total: 13 * MiB, used: 11 * MiB })).toBe(false); // under growthBytes: not activity
    expect(p.tick(20_000, 0, { total: 16 * MiB, used: 12.5 * MiB })).toBe(false); // grew: the wave
    expect(p.tick(25_000, 0, { total: 18 * MiB, used: 14.6 * MiB })).toBe(false); // still growing
    expect(p.tick(30_000, 0, { total: 18 * MiB, used: 14.8 * MiB })).toBe(false); // stopped 5 s ago
    expect(p.tick(35_000, 0, { total: 18 * MiB, used: 14.9 * MiB })).toBe(true);
  });

  it('counts connections closing as activity: after the pooled HBONE connections close, it trims the C heap they grew though the V8 heap has no slack', () => {
    const p = policy();
    const tight = (rss: number) => ({ total: 11.5 * MiB, used: 11 * MiB, rss });
    p.tick(0, '0/0/0', slack);
    expect(p.tick(10_000, '0/0/0', slack)).toBe(true); // start-up
    p.collected(tight(60 * MiB));
    expect(p.tick(15_000, '400/0/2', tight(66 * MiB))).toBe(false); // a burst: 400 opened, 2 tunnels
    expect(p.tick(20_000, '400/400/2', tight(66 * MiB))).toBe(false); // its connections end
    expect(p.tick(25_000, '400/400/2', tight(66 * MiB))).toBe(false);
    expect(p.tick(30_000, '400/400/2', tight(66 * MiB))).toBe(true); // 10 s after the last close: 6 MiB resident to give back
    p.collected(tight(63 * MiB));
    expect(p.tick(60_000, '400/400/2', tight(63 * MiB))).toBe(false); // nothing since
    expect(p.tick(75_000, '400/400/0', tight(65 * MiB))).toBe(false); // the pool's idle timeout closes both tunnels
    expect(p.tick(80_000, '400/400/0', tight(65 * MiB))).toBe(false);
    expect(p.tick(85_000, '400/400/0', tight(65 * MiB))).toBe(true); // their buffers: 2 MiB above the last collection's
  });

  it('leaves resident memory alone when it is not above what the last collection left', () => {
    const p = policy();
    const tight = (rss: number) => ({ total: 11.5 * MiB, used: 11 * MiB, rss });
    p.tick(0, 1, tight(62 * MiB));
    expect(p.tick(10_000, 1, tight(62 * MiB))).toBe(false); // no heap slack; no collection yet to compare with: the lowest seen is the base
    expect(p.tick(15_000, 2, tight(62.5 * MiB))).toBe(false);
    expect(p.tick(25_000, 2, tight(62.5 * MiB))).toBe(false); // 0.5 MiB above: under slackBytes
    expect(p.tick(30_000, 3, tight(64 * MiB))).toBe(false);
    expect(p.tick(40_000, 3, tight(64 * MiB))).toBe(true); // 2 MiB above the lowest quiet look
  });

  it('does not collect when committed and used are close', () => {
    const p = policy();
    p.tick(0, 0, slack);
    expect(p.tick(10_000, 0, { total: 11.5 * MiB, used: 11 * MiB })).toBe(false);
    expect(p.tick(15_000, 0, slack)).toBe(false); // looked already; nothing new since
  });
});

/** V8's old space (where a burst's survivors go; the young generation's size depends on the process's flags). */
function oldSpace(): { committed: number; used: number } {
  const s = getHeapSpaceStatistics().find((x) => x.space_name === 'old_space');
  if (!s) throw new Error('V8 reports no old_space');
  return { committed: s.space_size, used: s.space_used_size };
}

/** A burst of objects of which one in 20 survives (in the old space, spread over its pages). */
function burst(): { survivors: unknown[]; before: { committed: number; used: number } } {
  const survivors: unknown[] = [];
  let all: unknown[] | undefined = [];
  for (let i = 0; i < 600_000; i++) {
    const o = { i, s: `x${i}` };
    all.push(o);
    if (i % 20 === 0) survivors.push(o);
  }
  const before = oldSpace();
  all = undefined;
  return { survivors, before };
}

for (const [name, make] of [
  ['memoryReducer (the addon: V8 low-memory collections, malloc_trim)', memoryReducer],
  ['fullCollector (without the addon)', fullCollector],
] as const) {
  describe(name, () => {
    it('gives back the pages a burst left behind, also those its survivors are spread over, without a global gc', () => {
      const collect = make();
      expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
      const { survivors, before } = burst();
      collect();
      const after = oldSpace();
      expect(after.used).toBeLessThan(before.used - 8 * MiB);
      // committed follows used down: the survivors' pages were compacted
      expect(after.committed - after.used).toBeLessThan(4 * MiB);
      expect(survivors.length).toBe(30_000);
    });
  });
}
