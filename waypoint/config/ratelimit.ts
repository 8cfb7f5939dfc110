// envoy.filters.http.local_ratelimit: a token bucket shared by the requests the filter (or the
// route's override) covers. As in Envoy, filter_enabled absent means the filter is off, and
// filter_enforced absent means it only counts; a limited request gets 429 (or `status`) with
// `x-envoy-ratelimited: true` and the configured response headers.
import type { LocalRateLimit } from '../../api/gen/envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit';
import { fraction, millis } from './duration';
import { ConfigError } from './errors';
import { compileMutation, type HeaderMutation } from './headers';

export class TokenBucket {
  private tokens: number;
  private lastFill: number;

  constructor(
    readonly maxTokens: number,
    readonly tokensPerFill: number,
    readonly fillIntervalMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = maxTokens;
    this.lastFill = now();
  }

  /** Take one token if there is one. Tokens are added in whole fills, as Envoy's timer does. */
  take(): boolean {
    const t = this.now();
    const fills = Math.floor((t - this.lastFill) / this.fillIntervalMs);
    if (fills > 0) {
      this.tokens = Math.min(this.maxTokens, this.tokens + fills * this.tokensPerFill);
      this.lastFill += fills * this.fillIntervalMs;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  get available(): number {
    return this.tokens;
  }
}

export interface RateLimitPolicy {
  readonly bucket: TokenBucket;
  readonly enabled: number;
  readonly enforced: number;
  readonly status: number;
  readonly responseHeaders: HeaderMutation;
  readonly statPrefix: string;
}

export function compileRateLimit(c: LocalRateLimit, now?: () => number): RateLimitPolicy {
  const tb = c.tokenBucket;
  if (!tb) throw new ConfigError('local_ratelimit has no token_bucket');
  if (tb.maxTokens < 1) throw new ConfigError('local_ratelimit token_bucket.max_tokens must be at least 1');
  const interval = millis(tb.fillInterval, 0);
  if (interval <= 0) throw new ConfigError('local_ratelimit token_bucket.fill_interval must be positive');
  if (c.descriptors.length > 0) throw new ConfigError('local_ratelimit descriptors are not supported by the nodemesh waypoint');
  const status = c.status?.code && c.status.code >= 400 ? c.status.code : 429;
  return {
    bucket: new TokenBucket(tb.maxTokens, tb.tokensPerFill ?? 1, interval, now),
    enabled: fraction(c.filterEnabled?.defaultValue, 0),
    enforced: fraction(c.filterEnforced?.defaultValue, 0),
    status,
    responseHeaders: compileMutation(c.responseHeadersToAdd, []),
    statPrefix: c.statPrefix,
  };
}
