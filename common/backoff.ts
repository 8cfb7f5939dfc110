// Retry delays, the one back-off every reconnecting or retrying part of the mesh uses (xDS streams,
// certificate renewal, Kubernetes list/watch): exponential from initialMs, capped at maxMs, with
// jitter so that many processes restarted together do not retry in lock step.

export interface BackoffPolicy {
  /** The first retry's delay before jitter. */
  readonly initialMs: number;
  /** The largest delay before jitter. */
  readonly maxMs: number;
  /** Fraction of the step the delay may fall below it (0.2: down to 80 %). */
  readonly jitter: number;
  /** Fraction of the step the delay may rise above it (default: `jitter`; 0 keeps every delay at or below the step). */
  readonly jitterAbove?: number;
}

/**
 * Delay before retry number `retry` (0 = the first): the step min(maxMs, initialMs·2^retry), drawn
 * uniformly from [step·(1 − jitter), step·(1 + jitterAbove)].
 */
export function backoffDelay(retry: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const step = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(Math.max(0, retry), 30));
  const low = step * (1 - policy.jitter);
  const high = step * (1 + (policy.jitterAbove ?? policy.jitter));
  return Math.max(0, Math.round(low + random() * (high - low)));
}
