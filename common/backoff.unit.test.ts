import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff';

describe('backoffDelay', () => {
  it('doubles from the initial delay up to the cap, spread by jitter below and above the step', () => {
    const p = { initialMs: 1000, maxMs: 60_000, jitter: 0.2 };
    expect([0, 1, 2, 3, 4, 5, 6, 7, 100].map((n) => backoffDelay(n, p, () => 0.5))).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
    expect(backoffDelay(2, p, () => 0)).toBe(3200);
    expect(backoffDelay(2, p, () => 0.999999)).toBe(4800);
    // only below the step (the xDS client's upper-half full jitter)
    const upper = { initialMs: 100, maxMs: 1000, jitter: 0.5, jitterAbove: 0 };
    expect(backoffDelay(0, upper, () => 0)).toBe(50);
    expect(backoffDelay(0, upper, () => 1)).toBe(100);
    expect(backoffDelay(-1, upper, () => 1)).toBe(100);
  });
});
