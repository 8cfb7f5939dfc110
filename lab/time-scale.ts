// The lab's start-up limits on a slow machine (a VM under TCG, a loaded CI runner): scaled by
// NODEMESH_SPEED_FACTOR (1–50), which the test tiers set from the machine speed they measure
// (test/support/speed.ts) and a user may set by hand. Unset or below 1: the limits as written.
import { DEFAULT_PING_TIMEOUT_MS, PING_TIMEOUT_ENV } from '../common/hbone/client';

const MAX_FACTOR = 50;

/** `ms` scaled by NODEMESH_SPEED_FACTOR from `env`. Pure. */
export function labTimeout(ms: number, env: NodeJS.ProcessEnv = process.env): number {
  const f = Number(env.NODEMESH_SPEED_FACTOR);
  if (!Number.isFinite(f) || f <= 1) return ms;
  return Math.round(ms * Math.min(f, MAX_FACTOR));
}

/**
 * What a lab's node proxy gets on top of its environment on a slow machine: its HBONE client's
 * PING timeout scaled like the lab's other limits (a starved VM answers a PING late; the fixed 3 s
 * cut a healthy idle connection). Nothing when the factor is ≤ 1 or the user set the variable.
 */
export function labNodeProxyEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  if (env[PING_TIMEOUT_ENV] !== undefined && env[PING_TIMEOUT_ENV] !== '') return {};
  const ms = labTimeout(DEFAULT_PING_TIMEOUT_MS, env);
  return ms === DEFAULT_PING_TIMEOUT_MS ? {} : { [PING_TIMEOUT_ENV]: String(ms) };
}
