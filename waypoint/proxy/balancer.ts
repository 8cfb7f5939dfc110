// Choosing an endpoint of a cluster: ROUND_ROBIN (weighted by load_balancing_weight, smooth: an
// endpoint of weight 3 next to one of weight 1 gets 3 of every 4 picks, interleaved), LEAST_REQUEST (power of two choices on active
// requests) or RANDOM over the endpoints that are not ejected; Envoy's panic mode (use every
// endpoint) when none is left. Outlier detection ejects an endpoint after consecutive 5xx (or
// gateway failures) for base_ejection_time × times ejected, never more than max_ejection_percent
// of the endpoints (at least one). Pure logic with an injectable clock.
import type { LbPolicy, OutlierPolicy, UpstreamEndpoint } from '../config/clusters';

export class EndpointState {
  active = 0;
  consecutive5xx = 0;
  consecutiveGateway = 0;
  timesEjected = 0;
  ejectedUntil = 0;
  /** Smooth weighted round robin: accumulated credit. */
  credit = 0;
  /** address:port (made once: the request path reads it for every request). */
  readonly key: string;
  constructor(readonly endpoint: UpstreamEndpoint) {
    this.key = `${endpoint.address}:${endpoint.port}`;
  }
}

export interface OutlierEvent {
  readonly endpoint: string;
  readonly kind: 'ejected' | 'returned';
  readonly untilMs?: number;
}

export class Balancer {
  private states: EndpointState[] = [];
  ejections = 0;
  /** No endpoint is ejected from this time on (0: none is, as of the last pick that looked). */
  private ejectedUntilMax = 0;

  constructor(
    private lb: LbPolicy,
    private outlier: OutlierPolicy | undefined,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {}

  /** New cluster settings; endpoint state is kept. */
  configure(lb: LbPolicy, outlier: OutlierPolicy | undefined): void {
    this.lb = lb;
    this.outlier = outlier;
  }

  /** New endpoint set (EDS); state of endpoints that stay is kept. */
  setEndpoints(endpoints: readonly UpstreamEndpoint[]): void {
    const old = new Map(this.states.map((s) => [s.key, s]));
    const healthy = endpoints.filter((e) => e.health === 'healthy');
    const use = healthy.length > 0 ? healthy : endpoints;
    this.states = use.map((e) => {
      const prev = old.get(`${e.address}:${e.port}`);
      if (!prev) return new EndpointState(e);
      const s = new EndpointState(e);
      Object.assign(s, {
        credit: prev.credit,
        active: prev.active,
        consecutive5xx: prev.consecutive5xx,
        consecutiveGateway: prev.consecutiveGateway,
        timesEjected: prev.timesEjected,
        ejectedUntil: prev.ejectedUntil,
      });
      return s;
    });
    this.ejectedUntilMax = 0;
    for (const s of this.states) this.ejectedUntilMax = Math.max(this.ejectedUntilMax, s.ejectedUntil);
  }

  get size(): number {
    return this.states.length;
  }

  snapshot(): Array<{ endpoint: string; active: number; ejected: boolean; consecutive5xx: number; hbone: boolean }> {
    const t = this.now();
    return this.states.map((s) => ({
      endpoint: s.key,
      active: s.active,
      ejected: s.ejectedUntil > t,
      consecutive5xx: s.consecutive5xx,
      hbone: s.endpoint.hbone !== undefined,
    }));
  }

  /** An endpoint for the next request, or undefined when the cluster has none. */
  pick(exclude?: EndpointState): EndpointState | undefined {
    if (this.states.length === 0) return undefined;
    let candidates = this.states;
    // Only while an ejection may last: the clock read and the endpoints filtered.
    if (this.ejectedUntilMax !== 0) {
      const t = this.now();
      if (t >= this.ejectedUntilMax) this.ejectedUntilMax = 0;
      else {
        candidates = this.states.filter((s) => s.ejectedUntil <= t);
        if (candidates.length === 0) candidates = this.states; // panic: every endpoint
      }
    }
    if (exclude && candidates.length > 1) candidates = candidates.filter((s) => s !== exclude);
    switch (this.lb) {
      case 'RANDOM':
        return candidates[Math.floor(this.random() * candidates.length)];
      case 'LEAST_REQUEST': {
        if (candidates.length === 1) return candidates[0];
        const a = candidates[Math.floor(this.random() * candidates.length)]!;
        let b = candidates[Math.floor(this.random() * candidates.length)]!;
        if (b === a) b = candidates[(candidates.indexOf(a) + 1) % candidates.length]!;
        return b.active < a.active ? b : a;
      }
      default:
        return this.weightedRoundRobin(candidates);
    }
  }

  /**
   * Smooth weighted round robin: every candidate earns its weight, the richest is picked and pays
   * the total. Equal weights reduce to plain round robin; over any window of sum(weights) picks
   * each endpoint gets exactly its weight.
   */
  private weightedRoundRobin(candidates: EndpointState[]): EndpointState {
    if (candidates.length === 1) return candidates[0]!;
    let total = 0;
    let best: EndpointState | undefined;
    for (const c of candidates) {
      const w = Math.max(1, c.endpoint.weight);
      c.credit += w;
      total += w;
      if (!best || c.credit > best.credit) best = c;
    }
    best!.credit -= total;
    return best!;
  }

  /** Record the outcome of a request to `s`: an HTTP status, or a local failure (connect, reset, timeout). */
  record(s: EndpointState, outcome: number | 'local-failure'): OutlierEvent | undefined {
    const o = this.outlier;
    const is5xx = outcome === 'local-failure' || outcome >= 500;
    const isGateway = outcome === 'local-failure' || outcome === 502 || outcome === 503 || outcome === 504;
    if (!is5xx) {
      s.consecutive5xx = 0;
      s.consecutiveGateway = 0;
      return undefined;
    }
    s.consecutive5xx++;
    if (isGateway) s.consecutiveGateway++;
    else s.consecutiveGateway = 0;
    if (!o) return undefined;
    const t = this.now();
    if (s.ejectedUntil > t) return undefined;
    const by5xx = o.consecutive5xx > 0 && s.consecutive5xx >= o.consecutive5xx && this.random() < o.enforcing5xx;
    const byGateway = o.consecutiveGatewayFailure > 0 && s.consecutiveGateway >= o.consecutiveGatewayFailure && this.random() < o.enforcingGatewayFailure;
    if (!by5xx && !byGateway) return undefined;
    s.consecutive5xx = 0;
    s.consecutiveGateway = 0;
    const ejected = this.states.filter((x) => x.ejectedUntil > t).length;
    // Envoy: eject only while the ejected share is below max_ejection_percent (so at least one can go).
    if ((100 * ejected) / this.states.length >= o.maxEjectionPercent && ejected > 0) return undefined;
    s.timesEjected++;
    s.ejectedUntil = t + Math.min(o.maxEjectionMs, o.baseEjectionMs * s.timesEjected);
    this.ejectedUntilMax = Math.max(this.ejectedUntilMax, s.ejectedUntil);
    this.ejections++;
    return { endpoint: s.key, kind: 'ejected', untilMs: s.ejectedUntil };
  }
}
