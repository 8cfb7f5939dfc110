// The limits of a workload's plaintext inbound listener (15006). Anyone who can route to a pod
// reaches it (sk_lookup steers every inbound TCP connection there), and whatever such a peer holds
// is held by the node proxy, which every workload of the node shares: two fds, a table entry and a
// policy watch per connection. So a connection is bounded twice:
//   - connect: from accept until the app's side is connected (Istio's connectTimeout, 10 s): an app
//     whose backlog is full drops SYNs, and the kernel would retry for ~2 min;
//   - idle: no byte in either direction for an hour (Envoy's tcp_proxy default) — a peer that
//     vanished without FIN or RST is otherwise never noticed. Long enough for an app's idle pooled
//     connections; 0 turns it off.
// Both are counted in nodemesh_listener_timeouts_total{listener="inbound",kind="connect"|"idle"}.
import type { Socket } from 'node:net';
import { millisFromEnv } from '../../common/env';

export interface PlaintextInboundLimits {
  readonly connectTimeoutMs: number;
  /** 0: never. */
  readonly idleTimeoutMs: number;
}

export const PLAINTEXT_INBOUND_LIMITS: PlaintextInboundLimits = { connectTimeoutMs: 10_000, idleTimeoutMs: 3_600_000 };

/** How long a connect from inside a workload's netns (to the app behind 15008/15006, a passthrough destination, a waypoint) may take. */
export const DEFAULT_NETNS_CONNECT_TIMEOUT_MS = 10_000;
export const NETNS_CONNECT_TIMEOUT_ENV = 'NODEMESH_NETNS_CONNECT_TIMEOUT_MS';

/** That limit from NODEMESH_NETNS_CONNECT_TIMEOUT_MS (the default where unset); anything else than a whole number ≥ 1 throws, naming the variable. */
export function netnsConnectTimeoutFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  return millisFromEnv(env, NETNS_CONNECT_TIMEOUT_ENV, DEFAULT_NETNS_CONNECT_TIMEOUT_MS, 1);
}

export type InboundTimeoutKind = 'connect' | 'idle';

/**
 * The limits from NODEMESH_INBOUND_CONNECT_TIMEOUT_MS and NODEMESH_INBOUND_IDLE_TIMEOUT_MS (the
 * defaults where unset). A value that is not a whole number of milliseconds (connect: > 0,
 * idle: ≥ 0) throws, naming the variable.
 */
export function plaintextInboundLimits(env: NodeJS.ProcessEnv = process.env): PlaintextInboundLimits {
  return {
    connectTimeoutMs: millisFromEnv(env, 'NODEMESH_INBOUND_CONNECT_TIMEOUT_MS', PLAINTEXT_INBOUND_LIMITS.connectTimeoutMs, 1),
    idleTimeoutMs: millisFromEnv(env, 'NODEMESH_INBOUND_IDLE_TIMEOUT_MS', PLAINTEXT_INBOUND_LIMITS.idleTimeoutMs, 0),
  };
}

/**
 * Arms the connect timeout on an accepted 15006 socket; `connected()` (the app's side is there)
 * switches to the idle timeout. On expiry the socket is reset (connect) or destroyed with an
 * `idle timeout` error (idle; the splice then cuts the app's side) and `onTimeout` counts it.
 */
export function guardInbound(down: Socket, limits: PlaintextInboundLimits, onTimeout: (kind: InboundTimeoutKind) => void): { connected(): void } {
  let kind: InboundTimeoutKind = 'connect';
  down.setTimeout(limits.connectTimeoutMs);
  down.on('timeout', () => {
    if (down.destroyed) return;
    onTimeout(kind);
    if (kind === 'connect') down.resetAndDestroy();
    else down.destroy(Object.assign(new Error(`idle timeout: no byte either way for ${limits.idleTimeoutMs} ms`), { code: 'IDLE_TIMEOUT' }));
  });
  return {
    connected: () => {
      kind = 'idle';
      down.setTimeout(limits.idleTimeoutMs);
    },
  };
}
