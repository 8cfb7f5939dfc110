// Reconnect delays of the xDS client: common/backoff.ts with "full jitter" over the upper half of
// each step, so that many node proxies restarted together do not reconnect in lock step.
import { backoffDelay as delay } from '../backoff';

export interface BackoffOptions {
  readonly initialMs?: number;
  readonly maxMs?: number;
}

export const DEFAULT_BACKOFF = { initialMs: 500, maxMs: 30_000 } as const;

/** Delay before reconnect attempt number `attempt` (0 = the first retry): in [step/2, step]. */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const initialMs = options.initialMs ?? DEFAULT_BACKOFF.initialMs;
  const maxMs = options.maxMs ?? DEFAULT_BACKOFF.maxMs;
  return delay(attempt, { initialMs, maxMs, jitter: 0.5, jitterAbove: 0 }, random);
}
