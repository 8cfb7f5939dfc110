// Reconnect delays: exponential from initialMs, capped at maxMs, with "full jitter" over the upper
// half so that many node proxies restarted together do not reconnect in lock step.

export interface BackoffOptions {
  readonly initialMs?: number;
  readonly maxMs?: number;
}

export const DEFAULT_BACKOFF = { initialMs: 500, maxMs: 30_000 } as const;

/** Delay before reconnect attempt number `attempt` (0 = the first retry). */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const initial = options.initialMs ?? DEFAULT_BACKOFF.initialMs;
  const max = options.maxMs ?? DEFAULT_BACKOFF.maxMs;
  const ceiling = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
