// The control plane's client-facing timeouts and the variables that set them, in a module of their
// own (no grpc or CA code) so that the lab can scale them on a slow machine (lab/time-scale.ts)
// without loading the control plane.
import { millisFromEnv } from '../common/env';

export interface ApiLimits {
  /** A TLS client must finish its handshake within this (HTTPS only). */
  readonly handshakeTimeoutMs: number;
  /** A client must send its request headers within this. */
  readonly headersTimeoutMs: number;
  /** A client must send its whole request (headers and body) within this. */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  readonly keepAliveTimeoutMs: number;
}

export const DEFAULT_API_LIMITS: ApiLimits = { handshakeTimeoutMs: 10_000, headersTimeoutMs: 10_000, requestTimeoutMs: 60_000, keepAliveTimeoutMs: 5_000 };

/** The variables that set the config API's client timeouts (`nodemesh control`). */
export const API_LIMIT_ENV = { handshakeTimeoutMs: 'NODEMESH_API_HANDSHAKE_TIMEOUT_MS', headersTimeoutMs: 'NODEMESH_API_HEADERS_TIMEOUT_MS' } as const;

/** The limits API_LIMIT_ENV sets in `env` (each a positive whole number of milliseconds); a bad value is an error that names it. Pure. */
export function apiLimitsFromEnv(env: NodeJS.ProcessEnv): Partial<ApiLimits> {
  const out: { -readonly [K in keyof ApiLimits]?: number } = {};
  for (const [key, name] of Object.entries(API_LIMIT_ENV) as Array<[keyof typeof API_LIMIT_ENV, string]>) {
    const ms = millisFromEnv(env, name, undefined, 1);
    if (ms !== undefined) out[key] = ms;
  }
  return out;
}

/** The xDS listener's (15012) TLS handshake limit, and the variable that sets it. */
export const DEFAULT_XDS_HANDSHAKE_TIMEOUT_MS = 10_000;
export const XDS_HANDSHAKE_TIMEOUT_ENV = 'NODEMESH_XDS_HANDSHAKE_TIMEOUT_MS';
