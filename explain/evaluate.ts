// FROM -> TO[:PORT] [method, path] over one World: the path a connection takes and every decision
// on it, with the code the proxies run —
//   capture    the source is enrolled (HBONE) on a node: its node proxy captures the connection;
//   outbound   node-proxy/proxy/plan.ts planOutbound over that node's state: refuse, passthrough,
//              same node, an HBONE tunnel to the destination's node proxy, or to a waypoint;
//   waypoint   waypoint-step.ts: listener, route, RBAC, backends (the waypoint's own code);
//   inbound    node-step.ts: the destination's node proxy admits it (plan.ts admit):
//              PeerAuthentication, the waypoint binding, AuthorizationPolicies.
// An uncaptured source (not enrolled, or an address outside the mesh) reaches an enrolled
// destination in plaintext, where its node proxy's inbound capture applies the same admission.
// A Service with several endpoints is evaluated once per endpoint (the node proxy picks one per
// connection); a waypoint's backends likewise, per endpoint.
import type { Workload } from '../api/gen/nodemesh/workload/v1/workload';
import { formatAuthority } from '../common/hbone/authority';
import { ExplainError } from '../control/api/explain';
import { planOutbound, sourceIp, spiffeOf, type OutboundPlan } from '../node-proxy/proxy/plan';
import { serviceKey } from '../node-proxy/state/workload-state';
import type { Destination, EndpointOutcome, ExplainQuery, Explanation, Hop, PathKind, PolicyDecision, Source, WaypointStep } from './model';
import { admitAt, planView, type AdmissionStep } from './node-step';
import { isEnrolled, resolveDestination, resolveSource, workloadParty, type Resolved } from './parties';
import { verdictOf, type Outcome } from './verdict';
import { throughWaypoint } from './waypoint-step';
import type { World } from './world';

/** One way the connection can go (one endpoint the node proxy may pick). */
interface Branch {
  readonly path: PathKind;
  readonly hops: Hop[];
  readonly waypoint?: WaypointStep;
  readonly decisions: PolicyDecision[];
  readonly endpoints: EndpointOutcome[];
  readonly outcome: Outcome;
  readonly notes: string[];
}

const nameOf = (w: Pick<Workload, 'namespace' | 'name'>): string => `${w.namespace}/${w.name}`;

function endpointOutcome(w: Workload, address: string, step: AdmissionStep): EndpointOutcome {
  return { workload: nameOf(w), node: w.node, address, allowed: step.admission.allowed, reason: step.admission.verdict.reason };
}

/** The outcome of admissions at one or more endpoints: all allowed, all denied, or some. */
function combine(endpoints: readonly EndpointOutcome[], decisions: readonly PolicyDecision[]): Outcome {
  const allowed = endpoints.filter((e) => e.allowed);
  if (endpoints.length > 0 && allowed.length === endpoints.length) {
    // Name the rules that allowed it; with none, no policy denied it (the last point's reason says why).
    const allowers = decisions.filter((d) => d.kind === 'AuthorizationPolicy' && d.allowed && d.rule !== undefined && d.action !== 'DENY');
    const last = decisions[decisions.length - 1];
    const reason = allowers.length
      ? `allowed by ${[...new Set(allowers.map((d) => `${d.policy} rule ${d.rule} [${d.enforcer}]`))].join(', ')}`
      : `no policy denies it (${last?.reason ?? 'nothing applies'})`;
    return { kind: 'allowed', reason };
  }
  const denier = decisions.find((d) => !d.allowed);
  const by = denier ? `${denier.enforcer}${denier.policy ? `: ${denier.policy}` : ''}` : undefined;
  if (allowed.length === 0) return { kind: 'denied', ...(by ? { by } : {}), reason: denier?.reason ?? endpoints[0]?.reason ?? 'denied' };
  const denied = endpoints.filter((e) => !e.allowed);
  return {
    kind: 'partial',
    ...(by ? { by } : {}),
    reason: `allowed at ${allowed.map((e) => e.workload).join(', ')}, denied at ${denied.map((e) => `${e.workload} (${e.reason})`).join(', ')}`,
  };
}

export function explainConnection(world: World, q: ExplainQuery): Explanation {
  // Lookups (names, addresses) through a node proxy's state.
  const lookup = world.state;
  const from = resolveSource(world, lookup, q.from);
  const { to, port } = resolveDestination(world, lookup, q.to, q.port);
  const method = (q.method ?? 'GET').toUpperCase();
  const path = q.path ?? '/';
  const destination: Destination = { ...to.party, port };
  // The Host the client sends: the name it was given, or the address it dialled.
  const host = to.kind === 'service' && to.byName ? `${to.service.hostname}:${port}` : formatAuthority(to.party.address, port);

  let source: Source;
  let branches: Branch[];
  if (from.kind === 'workload' && isEnrolled(from.workload)) {
    source = {
      ...from.party,
      captured: true,
      capture: `enrolled (HBONE): the node proxy on ${from.workload.node} captures its outbound connections`,
    };
    branches = captured(world, from.workload, to, port, { host, method, path });
  } else {
    source = {
      ...from.party,
      captured: false,
      capture:
        from.kind === 'workload'
          ? 'not enrolled (its Workload or Namespace is not labelled nodemesh.io/dataplane-mode=ambient): nothing captures its connections, they leave in plaintext'
          : 'no Workload has this address: it is outside the mesh and nothing captures its connections',
    };
    branches = uncaptured(world, from, to, port);
  }
  const first = branches[0]!;
  const endpoints = branches.flatMap((b) => b.endpoints);
  const outcome =
    branches.length > 1
      ? combine(
          endpoints,
          branches.flatMap((b) => b.decisions),
        )
      : first.outcome;
  const notes = [...new Set([...world.refused, ...branches.flatMap((b) => b.notes)])];
  return {
    kind: 'Explanation',
    revision: world.revision,
    query: { from: q.from, to: q.to, port, method, path },
    source,
    destination,
    path: first.path,
    hops: first.hops,
    ...(first.waypoint ? { waypoint: first.waypoint } : {}),
    policies: first.decisions,
    ...(endpoints.length > 1 ? { endpoints } : {}),
    notes,
    verdict: verdictOf(source, destination, first.endpoints[0]?.node ?? destination.node, first.path, first.waypoint, outcome),
  };
}

interface Request {
  readonly host: string;
  readonly method: string;
  readonly path: string;
}

/** The source's node proxy plans the connection; every endpoint it may pick is one branch. */
function captured(world: World, src: Workload, to: Resolved, port: number, req: Request): Branch[] {
  const view = planView(world, src.node);
  const dst = { address: to.party.address, port };
  const client = { address: sourceIp(src, dst.address), port: 0 };
  let count = 1;
  let key: string | undefined;
  if (to.kind === 'service' && !to.service.waypoint) {
    key = serviceKey(to.service);
    count = Math.max(1, view.state.endpoints(to.service, port).length);
  }
  const out: Branch[] = [];
  for (let i = 0; i < count; i++) {
    const plan = planOutbound(view, src, client, dst, (k, candidates) => (k === key ? Math.min(i, candidates.length - 1) : 0));
    out.push(followPlan(world, src, to, plan, req));
  }
  return out;
}

function followPlan(world: World, src: Workload, to: Resolved, plan: OutboundPlan, req: Request): Branch {
  const lookup = world.state;
  const node = src.node;
  const srcName = nameOf(src);
  const srcId = spiffeOf({ trustDomain: world.options.trustDomain }, src);
  switch (plan.kind) {
    case 'refuse':
      return {
        path: 'refused',
        hops: [],
        decisions: [{ enforcer: `node proxy ${node}`, target: to.party.name, kind: 'route', allowed: false, reason: plan.reason }],
        endpoints: [],
        outcome: { kind: 'unreachable', by: `node proxy ${node}`, reason: `the node proxy refuses it (resets the client): ${plan.reason}` },
        notes: [],
      };
    case 'direct': {
      const w = lookup.workloadByIp(plan.target.address);
      const hop: Hop = {
        from: srcName,
        fromIdentity: srcId,
        to: w ? nameOf(w) : plan.target.address,
        toAddress: formatAuthority(plan.target.address, plan.target.port),
        transport: 'tcp',
        node,
      };
      if (w)
        return {
          path: 'plaintext',
          hops: [hop],
          decisions: [],
          endpoints: [],
          outcome: { kind: 'allowed', reason: `${nameOf(w)} is not enrolled: the connection goes in plaintext and no mesh policy applies to it` },
          notes: [],
        };
      return {
        path: 'passthrough',
        hops: [hop],
        decisions: [],
        endpoints: [],
        outcome: {
          kind: 'passthrough',
          reason: `${plan.target.address} is outside the mesh: the node proxy passes it through as plain TCP and no mesh policy applies`,
        },
        notes: [],
      };
    }
    case 'local': {
      const step = admitAt(world, {
        destination: plan.destination,
        target: plan.target,
        source: plan.record.source,
        sourceIp: plan.record.source.address,
        mtls: true,
        sameNode: true,
      });
      const hop: Hop = {
        from: srcName,
        fromIdentity: srcId,
        to: nameOf(plan.destination),
        toIdentity: spiffeOf({ trustDomain: world.options.trustDomain }, plan.destination),
        toAddress: formatAuthority(plan.target.address, plan.target.port),
        transport: 'same-node',
        node,
      };
      const endpoints = [endpointOutcome(plan.destination, hop.toAddress, step)];
      return { path: 'same-node', hops: [hop], decisions: step.decisions, endpoints, outcome: combine(endpoints, step.decisions), notes: [] };
    }
    case 'tunnel':
      return plan.hbone.address === plan.authority.address ? directTunnel(world, src, plan) : viaWaypoint(world, src, to, plan, req);
  }
}

function directTunnel(world: World, src: Workload, plan: Extract<OutboundPlan, { kind: 'tunnel' }>): Branch {
  const lookup = world.state;
  const dst = lookup.workloadByIp(plan.authority.address);
  const hop: Hop = {
    from: nameOf(src),
    fromIdentity: plan.record.source.identity,
    to: dst ? nameOf(dst) : plan.authority.address,
    toIdentity: plan.expected,
    toAddress: formatAuthority(plan.hbone.address, plan.hbone.port),
    authority: formatAuthority(plan.authority.address, plan.authority.port),
    transport: 'hbone',
    node: src.node,
  };
  if (!dst) throw new Error(`the plan tunnels to ${hop.authority}, which is no workload`); // planOutbound tunnels only to workloads it knows
  const step = admitAt(world, { destination: dst, target: plan.authority, source: plan.record.source, sourceIp: plan.record.source.address, mtls: true });
  const endpoints = [endpointOutcome(dst, hop.authority!, step)];
  return { path: 'hbone', hops: [hop], decisions: step.decisions, endpoints, outcome: combine(endpoints, step.decisions), notes: [] };
}

function viaWaypoint(world: World, src: Workload, to: Resolved, plan: Extract<OutboundPlan, { kind: 'tunnel' }>, req: Request): Branch {
  const lookup = world.state;
  const gateway = to.party.waypoint;
  const instance = lookup.workloadByIp(plan.hbone.address);
  if (!gateway) throw new ExplainError(400, `the node proxy tunnels to ${plan.hbone.address}, but ${to.party.name} names no waypoint`);
  const hop1: Hop = {
    from: nameOf(src),
    fromIdentity: plan.record.source.identity,
    to: `waypoint ${gateway}`,
    toIdentity: plan.expected,
    toAddress: formatAuthority(plan.hbone.address, plan.hbone.port),
    authority: formatAuthority(plan.authority.address, plan.authority.port),
    transport: 'hbone',
    node: src.node,
  };
  const wp = throughWaypoint(world.waypointConfig(gateway), {
    gateway,
    ...(instance ? { instance: nameOf(instance) } : {}),
    address: plan.hbone.address,
    identity: plan.expected,
    authority: plan.authority,
    principal: plan.record.source.identity ?? '',
    sourceIp: plan.record.source.address,
    host: req.host,
    method: req.method,
    path: req.path,
    ...(to.kind === 'service' ? { policies: world.waypointPolicies(to.service.namespace, to.service.name) } : {}),
  });
  const base = { path: 'waypoint' as const, waypoint: wp.step, notes: wp.notes };
  const by = (d: PolicyDecision | undefined) =>
    d ? `${d.enforcer}${d.policy ? `: ${d.policy}${d.rule ? ` rule ${d.rule}` : ''}` : ''}` : `waypoint ${gateway}`;
  if (wp.unreachable)
    return {
      ...base,
      hops: [hop1],
      decisions: wp.decisions,
      endpoints: [],
      outcome: { kind: 'unreachable', by: `waypoint ${gateway}`, reason: wp.unreachable },
    };
  if (wp.denied) {
    const d = wp.decisions.find((x) => !x.allowed);
    return {
      ...base,
      hops: [hop1],
      decisions: wp.decisions,
      endpoints: [],
      outcome: { kind: 'denied', by: by(d), reason: d?.reason ?? 'denied by the waypoint' },
    };
  }
  if (!wp.forwards)
    return {
      ...base,
      hops: [hop1],
      decisions: wp.decisions,
      endpoints: [],
      outcome: { kind: 'allowed', reason: `the waypoint answers it itself (${wp.step.action} ${wp.step.status ?? ''})`.replace(' )', ')') },
    };
  // The waypoint's upstream: an HBONE tunnel (or plain TCP) to each endpoint it may pick, admitted there.
  const endpoints: EndpointOutcome[] = [];
  let decisions: PolicyDecision[] = [];
  let hop2: Hop | undefined;
  for (const { endpoint } of wp.endpoints) {
    const w = lookup.workloadByIp(endpoint.address);
    const addr = formatAuthority(endpoint.address, endpoint.port);
    if (!w || !endpoint.hbone) {
      endpoints.push({
        workload: w ? nameOf(w) : addr,
        ...(w ? { node: w.node } : {}),
        address: addr,
        allowed: true,
        reason: 'not enrolled: the waypoint connects in plaintext and no mesh policy applies',
      });
      hop2 ??= { from: `waypoint ${gateway}`, fromIdentity: plan.expected, to: w ? nameOf(w) : addr, toAddress: addr, transport: 'tcp' };
      continue;
    }
    const step = admitAt(world, {
      destination: w,
      target: { address: endpoint.address, port: endpoint.port },
      source: { ...(instance ? { workload: instance } : {}), identity: plan.expected, address: plan.hbone.address, port: 0 },
      sourceIp: plan.hbone.address,
      mtls: true,
    });
    endpoints.push(endpointOutcome(w, addr, step));
    if (!hop2) {
      decisions = step.decisions;
      hop2 = {
        from: `waypoint ${gateway}`,
        fromIdentity: plan.expected,
        to: nameOf(w),
        toIdentity: endpoint.hbone.identity ?? workloadParty(world, w).identity,
        toAddress: formatAuthority(endpoint.hbone.address, endpoint.hbone.port),
        authority: addr,
        transport: 'hbone',
      };
    }
  }
  const all = [...wp.decisions, ...decisions];
  return { ...base, hops: hop2 ? [hop1, hop2] : [hop1], decisions: all, endpoints, outcome: combine(endpoints, all) };
}

/** Nothing captures the source: it reaches the destination as sent, in plaintext. */
function uncaptured(world: World, from: Resolved, to: Resolved, port: number): Branch[] {
  const lookup = world.state;
  const srcIp = from.party.address;
  const srcWorkload = from.kind === 'workload' ? from.workload : undefined;
  const peer = { ...(srcWorkload ? { workload: srcWorkload } : {}), address: srcIp, port: 0 };
  const reach = (w: Workload, address: string, targetPort: number, notes: string[]): Branch => {
    const hop: Hop = {
      from: from.party.name,
      to: nameOf(w),
      toIdentity: workloadParty(world, w).identity,
      toAddress: formatAuthority(address, targetPort),
      transport: 'tcp',
    };
    if (!isEnrolled(w))
      return {
        path: 'plaintext',
        hops: [hop],
        decisions: [],
        endpoints: [{ workload: nameOf(w), node: w.node, address: hop.toAddress, allowed: true, reason: 'not enrolled: no mesh policy applies' }],
        outcome: { kind: 'allowed', reason: `neither end is enrolled: plain TCP, no mesh policy applies` },
        notes,
      };
    const step = admitAt(world, { destination: w, target: { address, port: targetPort }, source: peer, sourceIp: srcIp, mtls: false });
    const endpoints = [endpointOutcome(w, hop.toAddress, step)];
    return { path: 'plaintext', hops: [hop], decisions: step.decisions, endpoints, outcome: combine(endpoints, step.decisions), notes };
  };
  if (to.kind === 'address')
    return [
      {
        path: 'plaintext',
        hops: [{ from: from.party.name, to: to.party.address, toAddress: formatAuthority(to.party.address, port), transport: 'tcp' }],
        decisions: [],
        endpoints: [],
        outcome: { kind: 'passthrough', reason: 'neither end is in the mesh: nothing captures or enforces anything' },
        notes: [],
      },
    ];
  if (to.kind === 'workload') return [reach(to.workload, to.party.address, port, [])];
  // A Service VIP without capture: whatever the host does with VIPs (kube-proxy on Kubernetes)
  // sends it to one endpoint, which receives it in plaintext. The netns lab has no such thing.
  const svcPort = to.service.ports.find((p) => p.servicePort === port);
  if (!svcPort) {
    const reason = `Service ${to.service.hostname} has no port ${port} (its ports: ${to.service.ports.map((p) => p.servicePort).join(', ') || 'none'})`;
    return [{ path: 'plaintext', hops: [], decisions: [], endpoints: [], outcome: { kind: 'unreachable', reason }, notes: [] }];
  }
  const note =
    'the source is not captured, so the mesh does not route this VIP: the host does (kube-proxy on Kubernetes; the netns lab has nothing that answers a VIP), and the chosen endpoint receives it in plaintext' +
    (to.service.waypoint ? `, past the Service's waypoint ${to.service.waypoint.gateway}` : '');
  const eps = lookup.endpoints(to.service, port);
  if (eps.length === 0)
    return [
      {
        path: 'plaintext',
        hops: [],
        decisions: [],
        endpoints: [],
        outcome: { kind: 'unreachable', reason: `Service ${to.service.hostname} has no healthy endpoint for port ${port}` },
        notes: [note],
      },
    ];
  return eps.map((e) => reach(e.workload, workloadParty(world, e.workload).address, e.targetPort, [note]));
}
