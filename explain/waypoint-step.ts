// The waypoint's side, with the waypoint's own code over the configuration it would serve
// (world.ts): the listener an HBONE CONNECT authority leads to (ConfigState.listenerForTunnel),
// for TCP the network RBAC filters, for HTTP the route table (matchRoute) and the HTTP RBAC
// filters with the route's per-filter config (proxy/filters.ts policyFor), then the route's
// backends with their weights and endpoints. Fault injection and rate limits are random or
// stateful and are not evaluated (noted).
import { formatAuthority } from '../common/hbone/authority';
import type { UpstreamEndpoint } from '../waypoint/config/clusters';
import type { CompiledListener } from '../waypoint/config/listeners';
import type { RbacEngine, RbacSubject } from '../waypoint/config/rbac';
import { requestView } from '../waypoint/config/request';
import { matchRoute, type ForwardAction } from '../waypoint/config/routes';
import { policyFor } from '../waypoint/proxy/filters';
import type { ConfigState } from '../waypoint/proxy/state';
import type { Backend, PolicyDecision, WaypointStep } from './model';
import type { WaypointConfig } from './world';

export interface WaypointInput {
  readonly gateway: string;
  readonly instance?: string;
  /** The waypoint's HBONE address and identity. */
  readonly address: string;
  readonly identity: string;
  /** The CONNECT authority the source's node proxy asks for. */
  readonly authority: { readonly address: string; readonly port: number };
  /** The client's verified SPIFFE ID and the tunnel's source address. */
  readonly principal: string;
  readonly sourceIp: string;
  /** For HTTP: the request (the Host the client sends, the method and path). */
  readonly host: string;
  readonly method: string;
  readonly path: string;
  /** The AuthorizationPolicies the waypoint enforces for this Service, by action (for the reasons). */
  readonly policies?: { readonly DENY: readonly string[]; readonly ALLOW: readonly string[] };
}

export interface WaypointOutcome {
  readonly step: WaypointStep;
  readonly decisions: PolicyDecision[];
  /** Forwarded to backends (else the waypoint answered itself: `status`). */
  readonly forwards: boolean;
  /** The waypoint refused or could not route it. */
  readonly denied: boolean;
  readonly unreachable?: string;
  /** Endpoints it would send to (per backend), for the next hop. */
  readonly endpoints: ReadonlyArray<{ readonly backend: Backend; readonly endpoint: UpstreamEndpoint }>;
  readonly notes: string[];
}

/** `ns.name[i]` (control/envoy/rbac.ts) -> AuthorizationPolicy ns/name and its 1-based rule. */
export function rbacPolicyName(name: string | undefined): { policy?: string; rule?: number } {
  const m = name ? /^([^.]*)\.(.+)\[(\d+)\]$/.exec(name) : null;
  return m ? { policy: `${m[1]}/${m[2]}`, rule: Number(m[3]) + 1 } : name ? { policy: name } : {};
}

/** `ns.name.rule.match[.prefix]` (control/envoy/routes.ts) -> HTTPRoute ns/name, 1-based rule and match. */
export function httpRouteOf(routeName: string): { httpRoute?: string; rule?: number; match?: number } {
  const m = /^([^.]+)\.(.+)\.(\d+)\.(\d+)(?:\.prefix)?$/.exec(routeName);
  return m ? { httpRoute: `${m[1]}/${m[2]}`, rule: Number(m[3]) + 1, match: Number(m[4]) + 1 } : {};
}

/** `outbound|port||host` -> the Service host and port. */
export function clusterService(cluster: string): { service?: string; port?: number } {
  const m = /^outbound\|(\d+)\|[^|]*\|(.+)$/.exec(cluster);
  return m ? { service: m[2]!, port: Number(m[1]) } : {};
}

function endpointsOf(state: ConfigState, cluster: string): UpstreamEndpoint[] {
  const rt = state.clusters.get(cluster);
  if (!rt) return [];
  const eps = rt.config.staticEndpoints ?? state.endpoints.get(rt.config.edsName ?? cluster) ?? [];
  // Degraded endpoints only when nothing else is left (waypoint/config/clusters.ts).
  const healthy = eps.filter((e) => e.health === 'healthy');
  return healthy.length ? healthy : [...eps];
}

function backendsOf(state: ConfigState, targets: ReadonlyArray<{ cluster: string; weight: number }>): Backend[] {
  const total = targets.reduce((n, t) => n + t.weight, 0) || 1;
  return targets.map((t) => ({
    cluster: t.cluster,
    ...clusterService(t.cluster),
    weight: t.weight,
    percent: Math.round((1000 * t.weight) / total) / 10,
    endpoints: endpointsOf(state, t.cluster).map((e) => formatAuthority(e.address, e.port)),
  }));
}

function rbacDecisions(
  engines: ReadonlyArray<{ engine: RbacEngine; name: string }>,
  subject: RbacSubject,
  enforcer: string,
  target: string,
  decisions: PolicyDecision[],
  policies: WaypointInput['policies'],
): boolean {
  for (const { engine, name } of engines) {
    const v = engine.evaluate(subject);
    const { policy, rule } = rbacPolicyName(v.policy);
    if (engine.action === 'LOG') continue;
    const who = subject.principal ?? `plaintext from ${subject.sourceIp}`;
    const listed = policies?.[engine.action]?.length ? ` (${policies[engine.action].join(', ')})` : ` (${name})`;
    const request = subject.request.method ? `${subject.request.method} ${subject.request.path} from ` : '';
    const reason =
      engine.action === 'DENY'
        ? v.allowed
          ? `no rule of the DENY policies${listed} matched ${request}${who}`
          : `DENY policy ${policy} rule ${rule} matched ${request}${who}: the waypoint answers 403 RBAC: access denied`
        : v.allowed
          ? `ALLOW policy ${policy} rule ${rule} matched ${request}${who}`
          : `no rule of the ALLOW policies${listed} matched ${request}${who}, and with ALLOW policies in place anything they do not match is denied: the waypoint answers 403 RBAC: access denied`;
    decisions.push({
      enforcer,
      target,
      kind: 'AuthorizationPolicy',
      ...(policy ? { policy } : {}),
      ...(rule !== undefined ? { rule } : {}),
      action: engine.action,
      allowed: v.allowed,
      reason,
    });
    if (!v.allowed) return false;
  }
  return true;
}

export function throughWaypoint(cfg: WaypointConfig, w: WaypointInput): WaypointOutcome {
  const enforcer = `waypoint ${w.gateway}`;
  const authority = formatAuthority(w.authority.address, w.authority.port);
  const base = { gateway: w.gateway, ...(w.instance ? { instance: w.instance } : {}), address: w.address, identity: w.identity };
  const notes = cfg.rejected.map((r) => `the waypoint would refuse (NACK) ${r}; it keeps serving its previous configuration, which explain cannot see`);
  const decisions: PolicyDecision[] = [];
  const refuse = (status: number, why: string, step: Partial<WaypointStep> = {}): WaypointOutcome => {
    decisions.push({ enforcer, target: authority, kind: 'route', allowed: false, reason: why });
    return { step: { ...base, backends: [], status, ...step }, decisions, forwards: false, denied: false, unreachable: why, endpoints: [], notes };
  };
  const listener: CompiledListener | undefined = cfg.state.listenerForTunnel(authority, w.authority.port);
  if (!listener || listener.config.kind === 'connect') return refuse(404, `the waypoint serves no listener for ${authority} (it answers the CONNECT with 404)`);
  const subjectBase = { principal: w.principal, sourceIp: w.sourceIp, destinationIp: w.authority.address, destinationPort: listener.port };
  const target = `${authority} (${listener.name})`;
  const collect = (backends: Backend[]) => backends.flatMap((b) => endpointsOf(cfg.state, b.cluster).map((endpoint) => ({ backend: b, endpoint })));

  if (listener.config.kind === 'tcp') {
    const tcp = listener.config;
    const subject: RbacSubject = { request: requestView('', '', '', 'tcp', {}), ...subjectBase };
    const ok = rbacDecisions(
      tcp.rbac.map((engine, i) => ({ engine, name: `network rbac ${i + 1}` })),
      subject,
      enforcer,
      target,
      decisions,
      w.policies,
    );
    const backends = backendsOf(cfg.state, [{ cluster: tcp.cluster, weight: 1 }]);
    const step: WaypointStep = { ...base, listener: listener.name, protocol: 'tcp', backends, ...(ok ? {} : { status: 403 }) };
    return { step, decisions, forwards: ok, denied: !ok, endpoints: ok ? collect(backends) : [], notes };
  }

  const http = listener.config;
  const request = { method: w.method, path: w.path, authority: w.host };
  const view = requestView(w.method, w.path, w.host, 'http', {});
  const table = cfg.state.routeTable(listener);
  if (!table)
    return refuse(503, `the waypoint has not received routes ${http.rdsName ?? ''} for ${listener.name}`, {
      listener: listener.name,
      protocol: 'http',
      request,
    });
  const match = matchRoute(table, view);
  if (!match)
    return refuse(404, `no route of ${table.name} matches ${w.method} ${w.host}${w.path} (the waypoint answers 404)`, {
      listener: listener.name,
      protocol: 'http',
      request,
    });
  const route = { routeConfig: table.name, virtualHost: match.virtualHost.name, name: match.route.name, ...httpRouteOf(match.route.name) };
  const engines: Array<{ engine: RbacEngine; name: string }> = [];
  for (const f of http.filters) {
    if (f.kind === 'rbac') {
      const engine = policyFor<RbacEngine>(match, 'rbac', f.engine);
      if (engine) engines.push({ engine, name: f.name });
    } else if (f.kind === 'fault' && (policyFor(match, 'fault', f.policy)?.abort || policyFor(match, 'fault', f.policy)?.delay)) {
      notes.push(`the route has fault injection (${f.name}); explain does not evaluate it (it applies to a share of requests)`);
    } else if (f.kind === 'ratelimit' && policyFor(match, 'rateLimit', f.policy)) {
      notes.push(`the route is rate limited (${f.name}); explain does not evaluate it (it depends on the request rate)`);
    }
  }
  const ok = rbacDecisions(engines, { request: view, ...subjectBase }, enforcer, target, decisions, w.policies);
  const a = match.route.action;
  const step0 = { ...base, listener: listener.name, protocol: 'http' as const, request, route, action: a.kind };
  if (!ok) return { step: { ...step0, backends: [], status: 403 }, decisions, forwards: false, denied: true, endpoints: [], notes };
  if (a.kind !== 'forward') {
    return { step: { ...step0, backends: [], status: a.status }, decisions, forwards: false, denied: false, endpoints: [], notes };
  }
  const fwd: ForwardAction = a;
  let targets: Array<{ cluster: string; weight: number }>;
  if (fwd.cluster) targets = [{ cluster: fwd.cluster, weight: 1 }];
  else if (fwd.weighted) targets = fwd.weighted.targets.map((t) => ({ cluster: t.cluster, weight: t.weight }));
  else {
    notes.push(`the route picks its cluster from the request header ${fwd.clusterHeader}, which explain does not know`);
    targets = [];
  }
  if (fwd.mirrors.length) notes.push(`the route also mirrors requests to ${fwd.mirrors.map((m) => m.cluster).join(', ')}`);
  const backends = backendsOf(cfg.state, targets);
  const endpoints = collect(backends);
  if (endpoints.length === 0 && targets.length > 0) {
    const why = `no backend of route ${match.route.name} has an endpoint (the waypoint answers 503)`;
    return { step: { ...step0, backends, status: 503 }, decisions, forwards: false, denied: false, unreachable: why, endpoints: [], notes };
  }
  return { step: { ...step0, backends }, decisions, forwards: true, denied: false, endpoints, notes };
}
