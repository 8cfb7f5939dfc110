// A measured machine-speed factor for time limits in tests: a slow machine (a VM under TCG, a
// loaded CI runner) gets proportionally longer limits instead of failing. The factor is the time
// a fixed piece of work (hashing, JSON, small syscalls — what the mesh's processes spend their
// time on) takes here, divided by what it takes on an ordinary unloaded machine; never below 1,
// capped at 50 (a VM at idle priority on a busy host measured past 20: a waypoint took 351 s to
// start against a limit of 20 x 10 s). NODEMESH_SPEED_FACTOR=<n> sets it (and a measured factor is put there, so child
// processes and later calls reuse it).
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';

/** Milliseconds the work below takes on the reference machine (a 2-core KVM guest, unloaded). */
export const REFERENCE_MS = 25;
const MAX_FACTOR = 50;

/** The fixed piece of work; returns how long it took in milliseconds. */
export function speedSample(): number {
  const t0 = process.hrtime.bigint();
  const chunk = Buffer.alloc(64 * 1024, 7);
  const h = createHash('sha256');
  for (let i = 0; i < 240; i++) h.update(chunk);
  h.digest();
  const doc = { items: Array.from({ length: 2000 }, (_, i) => ({ id: i, name: `w${i}`, labels: { app: 'x', v: String(i % 7) } })) };
  for (let i = 0; i < 10; i++) JSON.parse(JSON.stringify(doc));
  for (let i = 0; i < 4000; i++) statSync('/proc/self');
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** The factor from samples (the fastest of them: noise only ever makes a sample slower). Pure. */
export function factorFrom(samplesMs: number[], referenceMs = REFERENCE_MS): number {
  const best = Math.min(...samplesMs);
  return Math.min(MAX_FACTOR, Math.max(1, Math.round((best / referenceMs) * 10) / 10));
}

/** This machine's speed factor (measured once per process, or NODEMESH_SPEED_FACTOR). */
export function speedFactor(): number {
  const set = Number(process.env.NODEMESH_SPEED_FACTOR);
  if (Number.isFinite(set) && set >= 1) return set;
  speedSample(); // warm the JIT
  const f = factorFrom(Array.from({ length: 5 }, () => speedSample()));
  process.env.NODEMESH_SPEED_FACTOR = String(f);
  return f;
}

/** A time limit of `ms` on the reference machine, scaled to this one. */
export function scaled(ms: number): number {
  return Math.round(ms * speedFactor());
}
