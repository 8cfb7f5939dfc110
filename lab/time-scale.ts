// The lab's start-up limits on a slow machine (a VM under TCG, a loaded CI runner): scaled by
// NODEMESH_SPEED_FACTOR (1–20), which the test tiers set from the machine speed they measure
// (test/support/speed.ts) and a user may set by hand. Unset or below 1: the limits as written.
const MAX_FACTOR = 20;

/** `ms` scaled by NODEMESH_SPEED_FACTOR from `env`. Pure. */
export function labTimeout(ms: number, env: NodeJS.ProcessEnv = process.env): number {
  const f = Number(env.NODEMESH_SPEED_FACTOR);
  if (!Number.isFinite(f) || f <= 1) return ms;
  return Math.round(ms * Math.min(f, MAX_FACTOR));
}
