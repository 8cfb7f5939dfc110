// The lab's start-up limits on a slow machine (a VM under TCG, a loaded CI runner): scaled by
// NODEMESH_SPEED_FACTOR (1–50), which the test tiers set from the machine speed they measure
// (test/support/speed.ts) and a user may set by hand. Unset or below 1: the limits as written.
import { CONNECT_TIMEOUT_ENV, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_PING_TIMEOUT_MS, PING_TIMEOUT_ENV } from '../common/hbone/client';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, HANDSHAKE_TIMEOUT_ENV } from '../common/hbone/server';
import { API_LIMIT_ENV, DEFAULT_API_LIMITS, DEFAULT_XDS_HANDSHAKE_TIMEOUT_MS, XDS_HANDSHAKE_TIMEOUT_ENV } from '../control/limits';
import { DEFAULT_NETNS_CONNECT_TIMEOUT_MS, NETNS_CONNECT_TIMEOUT_ENV, PLAINTEXT_INBOUND_LIMITS } from '../node-proxy/proxy/inbound-limits';

const MAX_FACTOR = 50;

/** `ms` scaled by NODEMESH_SPEED_FACTOR from `env`. Pure. */
export function labTimeout(ms: number, env: NodeJS.ProcessEnv = process.env): number {
  const f = Number(env.NODEMESH_SPEED_FACTOR);
  if (!Number.isFinite(f) || f <= 1) return ms;
  return Math.round(ms * Math.min(f, MAX_FACTOR));
}

/**
 * The node proxy's fixed limits that a starved machine misses, by the variable that sets each, with
 * its default: the HBONE client's PING timeout (a starved VM answers a PING late; the fixed 3 s cut
 * a healthy idle connection), a new HBONE connection's dial and handshake (client) and a peer's
 * handshake (server) — a CONNECT waiting for a new pooled connection is reset when it is not up in
 * time, and the captured socket with it (ECONNRESET) — and the connect to the app from inside a
 * workload's netns (HBONE inbound, and 15006's accept-to-connected limit).
 */
export const LAB_SCALED_NODE_PROXY_LIMITS: ReadonlyArray<readonly [env: string, defaultMs: number]> = [
  [PING_TIMEOUT_ENV, DEFAULT_PING_TIMEOUT_MS],
  [CONNECT_TIMEOUT_ENV, DEFAULT_CONNECT_TIMEOUT_MS],
  [HANDSHAKE_TIMEOUT_ENV, DEFAULT_HANDSHAKE_TIMEOUT_MS],
  [NETNS_CONNECT_TIMEOUT_ENV, DEFAULT_NETNS_CONNECT_TIMEOUT_MS],
  ['NODEMESH_INBOUND_CONNECT_TIMEOUT_MS', PLAINTEXT_INBOUND_LIMITS.connectTimeoutMs],
];

/**
 * What a lab's node proxy gets on top of its environment on a slow machine: each of
 * LAB_SCALED_NODE_PROXY_LIMITS scaled like the lab's other limits. Nothing when the factor is ≤ 1;
 * a variable the user set is left as set.
 */
export function labNodeProxyEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return scaledEnv(LAB_SCALED_NODE_PROXY_LIMITS, env);
}

function scaledEnv(limits: ReadonlyArray<readonly [env: string, defaultMs: number]>, env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, ms] of limits) {
    if (env[name] !== undefined && env[name] !== '') continue;
    const scaled = labTimeout(ms, env);
    if (scaled !== ms) out[name] = String(scaled);
  }
  return out;
}

/**
 * The control plane's fixed limits that a starved machine misses: the TLS handshake of the config
 * API (15014) and of xDS (15012), and the config API's request headers, each 10 s. In a 6.12 VM
 * the lab control plane, busy beside a 64 MiB transfer, finished handshakes later than that: the
 * node proxies' xDS streams were reset (`read ECONNRESET`) and a test's apply failed with "Client
 * network socket disconnected before secure TLS connection was established".
 */
export const LAB_SCALED_CONTROL_PLANE_LIMITS: ReadonlyArray<readonly [env: string, defaultMs: number]> = [
  [API_LIMIT_ENV.handshakeTimeoutMs, DEFAULT_API_LIMITS.handshakeTimeoutMs],
  [API_LIMIT_ENV.headersTimeoutMs, DEFAULT_API_LIMITS.headersTimeoutMs],
  [XDS_HANDSHAKE_TIMEOUT_ENV, DEFAULT_XDS_HANDSHAKE_TIMEOUT_MS],
];

/** What a lab's control plane gets on top of its environment on a slow machine (as labNodeProxyEnv). */
export function labControlPlaneEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return scaledEnv(LAB_SCALED_CONTROL_PLANE_LIMITS, env);
}
