import { describe, expect, it } from 'vitest';
import { factorFrom, speedSample } from './speed';

describe('the machine-speed factor', () => {
  it('is the fastest sample over the reference, never below 1, capped at 50, one decimal', () => {
    expect(factorFrom([250, 100, 300], 25)).toBe(4);
    expect(factorFrom([10, 30], 25)).toBe(1);
    expect(factorFrom([26.4], 25)).toBe(1.1);
    expect(factorFrom([900], 25)).toBe(36);
    expect(factorFrom([9000], 25)).toBe(50);
  });

  it('a sample takes measurable time', () => {
    expect(speedSample()).toBeGreaterThan(0);
  });
});
