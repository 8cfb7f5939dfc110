// Forwarding with retries and timeouts: per attempt the circuit breakers (max_requests,
// max_pending_requests, max_retries), an endpoint from the balancer (another than the last one
// when it can), the per-try timeout within the route timeout, the outcome recorded for outlier
// detection; then Envoy's retry_on conditions with its fully jittered back-off, or the response
// (respond.ts) or a local reply for the last failure. One object per request, driven by the
// transport's callbacks and timers: no promise per request.
import type { Logger } from '../../common/log';
import type { HeaderMutation } from '../config/headers';
import { backoffMs, type CompiledRetry, type ForwardAction } from '../config/routes';
import type { WaypointMetrics } from '../telemetry/metrics';
import type { EndpointState } from './balancer';
import type { BodyTee } from './body-tee';
import type { Exchange } from './exchange';
import { localReply } from './local-reply';
import { respond } from './respond';
import type { ClusterRuntime } from './state';
import { UpstreamFailure, type Attempt, type AttemptListener, type AttemptRequest, type UpstreamHead, type UpstreamTransport } from './upstream';

export interface ForwardDeps {
  readonly transport: UpstreamTransport;
  readonly metrics: WaypointMetrics;
  readonly accessLog: Logger;
}

const GRPC_RETRY_ON: Record<string, string> = { '1': 'cancelled', '4': 'deadline-exceeded', '13': 'internal', '8': 'resource-exhausted', '14': 'unavailable' };

interface Outcome {
  readonly head?: UpstreamHead;
  readonly failure?: UpstreamFailure;
}

/** Whether an attempt's outcome is one the route retries on. */
export function retriable(retry: CompiledRetry, r: Outcome): boolean {
  const on = retry.on;
  if (r.failure) {
    switch (r.failure.kind) {
      case 'connect-failure':
        return on.has('connect-failure') || on.has('5xx') || on.has('gateway-error') || on.has('reset');
      case 'reset':
        return on.has('reset') || on.has('5xx');
      case 'timeout':
        return on.has('5xx') || on.has('gateway-error');
      default:
        return false;
    }
  }
  const s = r.head!.status;
  if (on.has('5xx') && s >= 500) return true;
  if (on.has('gateway-error') && (s === 502 || s === 503 || s === 504)) return true;
  if (on.has('retriable-status-codes') && retry.retriableStatusCodes.has(s)) return true;
  if (on.has('retriable-4xx') && s === 409) return true;
  const g = r.head!.headers['grpc-status'];
  if (typeof g === 'string' && GRPC_RETRY_ON[g] && on.has(GRPC_RETRY_ON[g])) return true;
  return false;
}

/** One request's forwarding: attempts until a response to send down, or a local reply. */
export class Forwarding {
  private attempt = 0;
  private previous: EndpointState | undefined;
  private last: Outcome | undefined;
  private readonly maxAttempts: number;
  /** The route timeout (Infinity: none). */
  private readonly timeoutMs: number;
  private readonly deadline: number;

  constructor(
    private readonly d: ForwardDeps,
    readonly ex: Exchange,
    private readonly rt: ClusterRuntime,
    private readonly action: ForwardAction,
    private readonly head: AttemptRequest,
    private readonly tee: BodyTee,
    private readonly responseLevels: readonly HeaderMutation[],
  ) {
    this.maxAttempts = 1 + (action.retry?.numRetries ?? 0);
    this.timeoutMs = action.timeoutMs > 0 ? action.timeoutMs : Infinity;
    this.deadline = Date.now() + this.timeoutMs;
  }

  /** Start the next attempt (the first one from the handler, later ones after the back-off). */
  next(): void {
    const { ex, rt } = this;
    if (ex.res.destroyed) return;
    this.attempt++;
    const cfg = rt.config;
    if (rt.active >= cfg.breakers.maxRequests) {
      this.d.metrics.overflows.inc({ cluster: cfg.name, breaker: 'max_requests' });
      ex.res.setHeader('x-envoy-overloaded', 'true');
      return localReply(ex, 503, 'upstream overflow: max_requests', 'UO');
    }
    if (rt.pending >= cfg.breakers.maxPendingRequests && rt.active >= cfg.breakers.maxConnections) {
      this.d.metrics.overflows.inc({ cluster: cfg.name, breaker: 'max_pending_requests' });
      ex.res.setHeader('x-envoy-overloaded', 'true');
      return localReply(ex, 503, 'upstream overflow: max_pending_requests', 'UO');
    }
    const ep = rt.balancer.pick(this.previous);
    if (!ep) return localReply(ex, 503, 'no healthy upstream', 'UH');
    this.previous = ep;
    ex.upstreamHost = ep.key;
    ex.upstreamIdentity = ep.endpoint.hbone?.identity;
    ex.upstreamWorkload = ep.endpoint.workload;
    // The first attempt starts as the deadline is set: the whole route timeout remains.
    const remaining = this.attempt === 1 ? this.timeoutMs : this.deadline - Date.now();
    const retry = this.action.retry;
    const perTry = retry?.perTryTimeoutMs ? Math.min(retry.perTryTimeoutMs, remaining) : remaining;
    new AttemptRun(this, rt, ep, this.tee).start(this.d, this.head, this.attempt === 1, perTry);
  }

  /** An attempt ended: record it for outlier detection, then retry, respond or reply locally. */
  settled(ep: EndpointState, result: Outcome): void {
    const { rt } = this;
    const cfg = rt.config;
    const outcome = result.head ? result.head.status : result.failure!.kind === 'overflow' ? undefined : 'local-failure';
    if (outcome !== undefined) {
      const ev = rt.balancer.record(ep, outcome);
      if (ev) {
        this.d.metrics.ejections.inc({ cluster: cfg.name });
        this.d.accessLog.warn({ cluster: cfg.name, endpoint: ev.endpoint, untilMs: ev.untilMs }, 'outlier detection ejected an endpoint');
      }
    }
    this.last = result;
    const wait = this.retryWait(result);
    if (wait >= 0) {
      if (result.head && result.head.whole === undefined) result.head.body.resume();
      rt.retries++;
      this.d.metrics.retries.inc({ cluster: cfg.name });
      setTimeout(retryAfterBackoff, wait, this);
      return;
    }
    this.finish(result);
  }

  /** The back-off before retrying after `result`, or -1 when it is not retried. */
  private retryWait(result: Outcome): number {
    const { rt } = this;
    const retry = this.action.retry;
    if (result.failure?.kind === 'timeout' && Date.now() >= this.deadline) return -1;
    if (this.attempt >= this.maxAttempts || !retry || !retriable(retry, result)) return -1;
    if (rt.retries >= rt.config.breakers.maxRetries) {
      this.d.metrics.overflows.inc({ cluster: rt.config.name, breaker: 'max_retries' });
      return -1;
    }
    const wait = backoffMs(retry, this.attempt);
    return Date.now() + wait >= this.deadline ? -1 : wait;
  }

  /** The back-off ended. */
  resume(): void {
    this.rt.retries--;
    // The body streamed past the buffer: it cannot be replayed.
    if (this.tee.overflow) return this.finish(this.last!);
    this.next();
  }

  private finish(last: Outcome): void {
    const ex = this.ex;
    if (last.head) {
      if (this.maxAttempts > 1 && retriable(this.action.retry!, last)) ex.flags.push('URX');
      return respond(ex, last.head, this.responseLevels, this.deadline);
    }
    const f = last.failure!;
    if (f.kind === 'timeout') {
      ex.detail = 'upstream_response_timeout';
      return localReply(ex, 504, 'upstream request timeout', 'UT');
    }
    if (this.maxAttempts > 1) ex.flags.push('URX');
    ex.detail = f.message;
    return localReply(
      ex,
      503,
      `upstream connect error or disconnect/reset before headers. reset reason: ${f.kind === 'connect-failure' ? 'connection failure' : 'connection termination'}`,
      f.kind === 'connect-failure' ? 'UF' : 'UC',
    );
  }
}

function retryAfterBackoff(f: Forwarding): void {
  f.resume();
}

/** One attempt: the cluster's and endpoint's counters, the per-try timer, and its one outcome. */
class AttemptRun implements AttemptListener {
  private done = false;
  private att: Attempt | undefined;
  private timer: NodeJS.Timeout | undefined;
  private released = false;

  constructor(
    private readonly fw: Forwarding,
    private readonly rt: ClusterRuntime,
    private readonly ep: EndpointState,
    private readonly tee: BodyTee,
  ) {}

  start(d: ForwardDeps, head: AttemptRequest, first: boolean, timeoutMs: number): void {
    const { rt, ep } = this;
    rt.active++;
    rt.pending++;
    ep.active++;
    try {
      this.att = d.transport.send(rt.config, ep.endpoint, head, this);
    } catch (err) {
      this.done = true;
      rt.pending--;
      this.release();
      return this.end({ failure: new UpstreamFailure('connect-failure', err instanceof Error ? err.message : String(err)) });
    }
    if (!this.tee.attach(this.att.sink, first)) {
      this.done = true;
      this.att.abort();
      rt.pending--;
      this.release();
      return this.end({ failure: new UpstreamFailure('reset', 'request body too large to retry') });
    }
    if (Number.isFinite(timeoutMs)) this.timer = setTimeout(attemptTimedOut, Math.max(1, timeoutMs), this, timeoutMs);
    if (!this.done) this.fw.ex.inFlight = this;
  }

  /** The downstream went away before the response head: reset the attempt (its connection is not reused); nothing is answered. */
  abandon(): void {
    if (this.done) return;
    this.done = true;
    this.fw.ex.inFlight = undefined;
    clearTimeout(this.timer);
    this.rt.pending--;
    this.tee.detach();
    this.att?.abort();
    this.release();
  }

  onHead(h: UpstreamHead): void {
    if (this.done) {
      h.body.resume();
      return;
    }
    this.done = true;
    clearTimeout(this.timer);
    this.rt.pending--;
    if (h.whole !== undefined) this.release();
    else {
      h.body.once('close', this.releaseOnce);
      h.body.once('end', this.releaseOnce);
    }
    this.end({ head: h });
  }

  onFailure(f: UpstreamFailure): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.rt.pending--;
    this.tee.detach();
    this.release();
    this.end({ failure: f });
  }

  timedOut(timeoutMs: number): void {
    if (this.done) return;
    this.done = true;
    this.rt.pending--;
    this.tee.detach();
    this.att?.abort();
    this.release();
    this.end({ failure: new UpstreamFailure('timeout', `no response within ${timeoutMs} ms`) });
  }

  private end(result: Outcome): void {
    this.fw.ex.inFlight = undefined;
    this.fw.settled(this.ep, result);
  }

  /** Made only for a response whose body streams (one arriving whole with its head is released at once). */
  private get releaseOnce(): () => void {
    return () => this.release();
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.rt.active--;
    this.ep.active--;
  }
}

function attemptTimedOut(a: AttemptRun, timeoutMs: number): void {
  a.timedOut(timeoutMs);
}
