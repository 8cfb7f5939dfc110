import { describe, expect, it } from 'vitest';
import { supervise, SUPERVISOR_LIMITS, type SupervisedRecord } from './supervisor';

const fresh = (): SupervisedRecord => ({ name: 'node-proxy', place: 'node1', seen: false, restarts: 0, backoffMs: 0 });

/** Runs the supervisor's decision for a process that dies at once after every start; returns the start times. */
function crashLoop(rec: SupervisedRecord, untilMs: number): number[] {
  const starts: number[] = [];
  for (let now = 0; now <= untilMs; now += 100) if (supervise(rec, undefined, now) === 'start') starts.push(now);
  return starts;
}

describe('the lab supervisor (restart with back-off, as kubelet)', () => {
  it('leaves a component alone until it has been seen running (lab up starts it)', () => {
    const rec = fresh();
    expect(supervise(rec, undefined, 0)).toBe('none');
    expect(supervise(rec, undefined, 10_000)).toBe('none');
    expect(rec.restarts).toBe(0);
  });

  it('restarts a crash-looping process after 0.5 s, 1 s, 2 s, 4 s … capped at 30 s', () => {
    const rec = fresh();
    expect(supervise(rec, { startedAtMs: 0 }, 0)).toBe('none');
    const starts = crashLoop(rec, 130_000);
    const gaps = starts.map((t, i) => t - (i === 0 ? 0 : starts[i - 1]!));
    // each gap: the back-off plus the 100 ms the test's clock needs to notice the new crash
    expect(gaps.slice(0, 7)).toEqual([500, 1100, 2100, 4100, 8100, 16100, 30100]);
    expect(gaps.slice(7).every((g) => g === 30100)).toBe(true);
    expect(rec.restarts).toBe(starts.length);
  });

  it('forgets the back-off once a process has run for 60 s', () => {
    const rec = fresh();
    supervise(rec, { startedAtMs: 0 }, 0);
    crashLoop(rec, 20_000);
    expect(rec.backoffMs).toBeGreaterThan(SUPERVISOR_LIMITS.initialBackoffMs);
    expect(supervise(rec, { startedAtMs: 30_000 }, 60_000)).toBe('none');
    expect(rec.backoffMs).toBeGreaterThan(SUPERVISOR_LIMITS.initialBackoffMs);
    expect(supervise(rec, { startedAtMs: 30_000 }, 90_000)).toBe('none');
    expect(rec.backoffMs).toBe(0);
    expect(supervise(rec, undefined, 100_000)).toBe('wait');
    expect(supervise(rec, undefined, 100_499)).toBe('wait');
    expect(supervise(rec, undefined, 100_500)).toBe('start');
  });
});
