import { describe, expect, it } from 'vitest';
import { labTimeout } from './time-scale';

describe('labTimeout', () => {
  it('scales by NODEMESH_SPEED_FACTOR, capped at 50, and leaves the limit alone without one', () => {
    expect(labTimeout(20_000, {})).toBe(20_000);
    expect(labTimeout(20_000, { NODEMESH_SPEED_FACTOR: '0.5' })).toBe(20_000);
    expect(labTimeout(20_000, { NODEMESH_SPEED_FACTOR: 'fast' })).toBe(20_000);
    expect(labTimeout(20_000, { NODEMESH_SPEED_FACTOR: '3.5' })).toBe(70_000);
    expect(labTimeout(1_000, { NODEMESH_SPEED_FACTOR: '36' })).toBe(36_000);
    expect(labTimeout(1_000, { NODEMESH_SPEED_FACTOR: '99' })).toBe(50_000);
  });
});
