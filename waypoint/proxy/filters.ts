// The HCM's HTTP filters before the router, in the listener's order: rbac (with shadow rules),
// local_ratelimit and fault (delay, abort), each with the route's or virtual host's per-filter
// config over the listener's. Synchronous unless a fault delay applies (then a timer, no promise).
import type { Logger } from '../../common/log';
import type { FaultPolicy } from '../config/fault';
import { applyMutations, type MutableHeaders } from '../config/headers';
import type { RbacEngine, RbacSubject } from '../config/rbac';
import type { RateLimitPolicy } from '../config/ratelimit';
import type { PerFilter, RouteMatchResult } from '../config/routes';
import type { WaypointMetrics } from '../telemetry/metrics';
import type { Exchange } from './exchange';
import { grpcReply, localReply } from './local-reply';

export interface FilterDeps {
  readonly metrics: WaypointMetrics;
  readonly accessLog: Logger;
}

/** Called when every filter let the request through. */
export type FilterNext = (ex: Exchange) => void;

/** The route's per-filter config, else the virtual host's, else the listener's (`null`: disabled); `nodemesh explain` reads it too. */
export function policyFor<T>(m: RouteMatchResult, name: keyof PerFilter, base: T | undefined): T | undefined {
  const r = m.route.perFilter[name] as T | null | undefined;
  if (r === null) return undefined;
  if (r !== undefined) return r;
  const v = m.virtualHost.perFilter[name] as T | null | undefined;
  if (v === null) return undefined;
  return v ?? base;
}

export function rbacSubject(ex: Exchange): RbacSubject {
  return { request: ex.view, principal: ex.conn.principal, sourceIp: ex.conn.sourceIp, destinationIp: ex.conn.destinationIp, destinationPort: ex.conn.port };
}

/**
 * Run the filters from index `from`; `next(ex)` when all pass, else a local reply went out.
 * `resumed`: the filter at `from` already applied its delay (after the timer).
 */
export function runHttpFilters(ex: Exchange, d: FilterDeps, next: FilterNext, from = 0, resumed = false): void {
  const listener = ex.listener!;
  if (listener.config.kind !== 'http') return;
  const filters = listener.config.filters;
  const m = ex.match!;
  for (let i = from; i < filters.length; i++) {
    const f = filters[i]!;
    if (f.kind === 'rbac') {
      const engine = policyFor<RbacEngine>(m, 'rbac', f.engine);
      if (f.shadow) {
        const s = f.shadow.evaluate(rbacSubject(ex));
        if (!s.allowed) d.accessLog.info({ policy: s.policy, path: ex.view.path }, 'rbac shadow rules would deny');
      }
      if (!engine) continue;
      const verdict = engine.evaluate(rbacSubject(ex));
      if (!verdict.allowed) {
        d.metrics.rbacDenied.inc({ listener: listener.name, policy: verdict.policy ?? '' });
        ex.detail = `rbac_access_denied_matched_policy[${verdict.policy ?? 'none'}]`;
        return localReply(ex, 403, 'RBAC: access denied', '-');
      }
    } else if (f.kind === 'ratelimit') {
      const p = policyFor<RateLimitPolicy>(m, 'rateLimit', f.policy);
      if (!p || Math.random() >= p.enabled) continue;
      if (!p.bucket.take() && Math.random() < p.enforced) {
        d.metrics.rateLimited.inc({ stat_prefix: p.statPrefix });
        const extra: MutableHeaders = { 'x-envoy-ratelimited': 'true' };
        applyMutations(extra, [p.responseHeaders]);
        return localReply(ex, p.status, 'local_rate_limited', 'RL', extra);
      }
    } else if (f.kind === 'fault') {
      const p = policyFor<FaultPolicy>(m, 'fault', f.policy);
      if (!p || !p.headers.every((h) => h(ex.view))) continue;
      if (p.upstreamCluster && p.upstreamCluster !== ex.target?.cluster) continue;
      if (!(resumed && i === from) && p.delay && Math.random() < p.delay.fraction) {
        ex.flags.push('DI');
        setTimeout(afterDelay, p.delay.ms, ex, d, next, i);
        return;
      }
      if (p.abort && Math.random() < p.abort.fraction) {
        ex.flags.push('FI');
        if (p.abort.grpcStatus !== undefined && ex.grpc) return grpcReply(ex, p.abort.grpcStatus, 'fault filter abort');
        return localReply(ex, p.abort.httpStatus ?? 503, 'fault filter abort', '');
      }
    }
  }
  next(ex);
}

function afterDelay(ex: Exchange, d: FilterDeps, next: FilterNext, i: number): void {
  if (ex.res.destroyed) return;
  runHttpFilters(ex, d, next, i, true);
}
