// Translation of a store snapshot into the workload API (api/proto/nodemesh/workload/v1): one
// Address per Workload and per Service, one Authorization per L4-enforceable AuthorizationPolicy.
// Pure: the same snapshot always gives the same messages, in the same byte encoding.
//
// Decisions (see docs/xds.md):
// - Resource names: a Workload's uid is "Workload/<ns>/<name>" (stable across delete and
//   re-create, so reconnecting node proxies keep what they have); a Service is "<ns>/<hostname>";
//   an Authorization is "<ns>/<name>".
// - Pods (Workloads the Kubernetes source mirrors, with the nodemesh.io/pod-uid annotation):
//   workload_type "Pod" and pod_uid set. A Pod is published once scheduled, possibly with no
//   addresses yet: it is then in no index by IP, no EDS endpoint and no waypoint address, only
//   its own node proxy acts on it (capture, certificate), until the addresses arrive.
// - Enrolment: nodemesh.io/dataplane-mode on the Workload wins over its Namespace's; "ambient"
//   means HBONE, anything else plain TCP.
// - Waypoints: nodemesh.io/use-waypoint on the Workload/Service wins over the Namespace's ("none"
//   stops inheritance). The Gateway must exist, be for the right traffic (waypoint-for), and have
//   an address: spec.addresses (IPAddress), else a Workload labelled
//   gateway.networking.k8s.io/gateway-name=<gateway>, else a Service so labelled (by host name).
//   A waypoint that is asked for but cannot be used (no such Gateway, no address, or — when the
//   resource's own label names it — a Gateway for other traffic) is published *unresolved*: a
//   GatewayAddress with the Gateway's name, a reason and no destination, so node proxies refuse
//   the traffic (fail closed) instead of sending it direct past the waypoint's L7 policy. It is
//   also reported as a warning.
// - Authorization: only what a node proxy can check at L4. AuthorizationPolicies with targetRefs
//   belong to waypoints and are skipped — except when a Service they target has no usable
//   waypoint (none, or unresolved): then nobody would enforce them, so they are published as a
//   DENY-everything Authorization that the workloads of that Service list (fail closed), its rule
//   marked in Rule.l7_attributes with "targetRefs:Service/<ns>/<name>" (target-refs.ts), and a
//   warning is reported. Once the Service's waypoint resolves, it is no longer sent. The L7 attributes a rule used are named in
//   Rule.l7_attributes. For DENY they are stripped so the rule denies on its L4 part (fail
//   closed). For ALLOW, alternatives that need L7 are dropped when the rule can still match at L4
//   through its other alternatives; a rule that cannot is sent as its L4 part plus the
//   attributes, and node proxies treat it as never matching without a waypoint.
// - PeerAuthentication: one message per resource (peer-authentication.ts); workloads list the
//   selector policies that select them, as they do for Authorizations.
import {
  DATAPLANE_MODE_LABEL,
  meshLabel,
  USE_WAYPOINT_LABEL,
  USE_WAYPOINT_NAMESPACE_LABEL,
  WAYPOINT_FOR_LABEL,
  matchesLabels,
  targetPortOf,
  type AuthorizationPolicy,
  type Condition,
  type Gateway,
  type Namespace,
  type Operation,
  type Rule as PolicyRule,
  type Service as ServiceResource,
  type Source,
  type Workload as WorkloadResource,
} from '../resources';
import type { Snapshot } from '../store/store';
import {
  Address,
  Authorization,
  PeerAuthentication,
  AuthorizationAction,
  AuthorizationScope,
  Clause,
  GatewayAddress,
  Match,
  Port,
  Rule,
  Service,
  StringMatch,
  TunnelProtocol,
  Workload,
  WorkloadStatus,
} from '../../api/gen/nodemesh/workload/v1/workload';
import { cidrOf, ipBytes } from './addresses';
import { peerAuthenticationSelector, translatePeerAuthentication } from './peer-authentication';
import { unenforcedTargetRefAttribute } from './target-refs';
import { GATEWAY_NAME_LABEL } from '../../common/contracts/labels';
import { HBONE_PORT } from '../../common/contracts/ports';
import { canonicalRevision, canonicalService } from '../../common/contracts/telemetry';
import { POD_UID_ANNOTATION } from '../resources/workload';

export interface TranslateOptions {
  /** Trust domain of workload identities. */
  readonly trustDomain: string;
  /** Policies in this namespace without a selector apply mesh-wide. */
  readonly rootNamespace: string;
  /** Service host names are <name>.<namespace>.svc.<domainSuffix>. */
  readonly domainSuffix: string;
}

export const DEFAULT_TRANSLATE_OPTIONS: TranslateOptions = {
  trustDomain: 'cluster.local',
  rootNamespace: 'nodemesh-system',
  domainSuffix: 'cluster.local',
};

export interface WorkloadApiState {
  /** Resource name -> Address (Workload or Service). */
  readonly addresses: Map<string, Address>;
  /** Resource name -> Authorization. */
  readonly authorizations: Map<string, Authorization>;
  /** Resource name ("<namespace>/<name>") -> PeerAuthentication. */
  readonly peerAuthentications: Map<string, PeerAuthentication>;
  /** Things that were left out, with the reason (unresolvable waypoints, …). */
  readonly warnings: string[];
}

export function workloadUid(namespace: string, name: string): string {
  return `Workload/${namespace}/${name}`;
}

export function serviceHostname(namespace: string, name: string, domainSuffix: string): string {
  return `${name}.${namespace}.svc.${domainSuffix}`;
}

export function serviceResourceName(namespace: string, hostname: string): string {
  return `${namespace}/${hostname}`;
}

type WaypointUse = 'service' | 'workload';

class Translation {
  readonly warnings: string[] = [];
  private readonly namespaces = new Map<string, Namespace>();
  private readonly servicesByNs = new Map<string, ServiceResource[]>();
  /** Services with a selector, by namespace and by one of their selector's label pairs. */
  private readonly selectingServices = new Map<string, Map<string, ServiceResource[]>>();
  private readonly selectorPoliciesByNs = new Map<string, AuthorizationPolicy[]>();
  /** AuthorizationPolicies whose targetRefs name a Service, by "<ns>/<service name>". */
  private readonly targetRefPoliciesByService = new Map<string, AuthorizationPolicy[]>();
  /** Each Service's waypoint (undefined: none), computed once. */
  private readonly serviceWaypoints = new Map<ServiceResource, GatewayAddress | undefined>();
  /** PeerAuthentications with a (non-empty) selector, by namespace. */
  private readonly selectorPeerAuthnByNs = new Map<string, Array<{ name: string; matchLabels: Readonly<Record<string, string>> }>>();
  private readonly waypointCache = new Map<string, GatewayAddress | { notFor: string } | string>();
  private readonly waypointWarned = new Set<string>();

  constructor(
    private readonly snapshot: Snapshot,
    private readonly options: TranslateOptions,
  ) {
    for (const ns of snapshot.list('Namespace')) this.namespaces.set(ns.metadata.name, ns);
    for (const svc of snapshot.list('Service')) {
      const ns = svc.metadata.namespace ?? '';
      push(this.servicesByNs, ns, svc);
      const first = Object.entries(svc.spec.selector ?? {})[0];
      if (!first) continue;
      let byLabel = this.selectingServices.get(ns);
      if (!byLabel) this.selectingServices.set(ns, (byLabel = new Map()));
      push(byLabel, `${first[0]}=${first[1]}`, svc);
    }
    for (const policy of snapshot.list('AuthorizationPolicy')) {
      if (policy.spec.selector) push(this.selectorPoliciesByNs, policy.metadata.namespace ?? '', policy);
      for (const key of new Set(targetedServices(policy))) push(this.targetRefPoliciesByService, key, policy);
    }
    for (const pa of snapshot.list('PeerAuthentication')) {
      const matchLabels = peerAuthenticationSelector(pa);
      if (matchLabels) push(this.selectorPeerAuthnByNs, pa.metadata.namespace ?? '', { name: pa.metadata.name, matchLabels });
    }
  }

  workload(w: WorkloadResource): Workload {
    const ns = w.metadata.namespace ?? '';
    const labels = w.metadata.labels ?? {};
    const nsLabels = this.namespaces.get(ns)?.metadata.labels ?? {};
    const mode = meshLabel(labels, DATAPLANE_MODE_LABEL) ?? meshLabel(nsLabels, DATAPLANE_MODE_LABEL);

    const services: Record<string, { $type: 'nodemesh.workload.v1.PortList'; ports: Port[] }> = {};
    const matched: ServiceResource[] = [];
    const byLabel = this.selectingServices.get(ns);
    if (byLabel) {
      for (const [k, v] of Object.entries(labels)) {
        for (const s of byLabel.get(`${k}=${v}`) ?? []) if (matchesLabels(labels, s.spec.selector)) matched.push(s);
      }
      matched.sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
    }
    for (const svc of matched) {
      const hostname = serviceHostname(ns, svc.metadata.name, this.options.domainSuffix);
      const ports: Port[] = [];
      for (const p of svc.spec.ports) {
        if (p.protocol !== 'TCP') continue;
        const target = targetPortOf(p);
        const targetPort = typeof target === 'number' ? target : w.spec.ports?.find((wp) => wp.name === target)?.port;
        if (targetPort === undefined) continue; // a named port this workload does not declare
        ports.push(Port.fromPartial({ servicePort: p.port, targetPort }));
      }
      services[serviceResourceName(ns, hostname)] = { $type: 'nodemesh.workload.v1.PortList', ports };
    }

    const policies = (this.selectorPoliciesByNs.get(ns) ?? [])
      .filter((p) => !p.spec.targetRefs && matchesLabels(labels, p.spec.selector?.matchLabels))
      .map((p) => `${ns}/${p.metadata.name}`);
    // targetRefs policies on a selecting Service that has no usable waypoint (fail closed).
    const unenforced = new Set<string>();
    for (const svc of matched) {
      if (!this.lacksWaypoint(svc)) continue;
      for (const p of this.targetRefPoliciesByService.get(`${ns}/${svc.metadata.name}`) ?? [])
        unenforced.add(`${p.metadata.namespace ?? ''}/${p.metadata.name}`);
    }
    policies.push(...[...unenforced].sort());
    const peerAuthentications = (this.selectorPeerAuthnByNs.get(ns) ?? [])
      .filter((p) => matchesLabels(labels, p.matchLabels))
      .map((p) => `${ns}/${p.name}`)
      .sort();

    const podUid = w.metadata.annotations?.[POD_UID_ANNOTATION];
    return Workload.fromPartial({
      uid: workloadUid(ns, w.metadata.name),
      name: w.metadata.name,
      namespace: ns,
      addresses: w.spec.addresses.map(ipBytes),
      serviceAccount: w.spec.serviceAccount,
      node: w.spec.node,
      tunnelProtocol: mode === 'ambient' ? TunnelProtocol.TUNNEL_PROTOCOL_HBONE : TunnelProtocol.TUNNEL_PROTOCOL_NONE,
      waypoint: this.waypointFor(labels, nsLabels, ns, 'workload', `Workload ${ns}/${w.metadata.name}`),
      services: sortedRecord(services),
      canonicalName: canonicalService(labels, w.metadata.name),
      canonicalRevision: canonicalRevision(labels),
      trustDomain: this.options.trustDomain,
      status: WorkloadStatus.WORKLOAD_STATUS_HEALTHY,
      authorizationPolicies: policies,
      runtime: w.spec.netnsPath || w.spec.cgroupPath ? { netns: w.spec.netnsPath ?? '', cgroup: w.spec.cgroupPath ?? '' } : undefined,
      workloadType: podUid ? 'Pod' : 'Workload',
      podUid: podUid ?? '',
      peerAuthenticationPolicies: peerAuthentications,
    });
  }

  service(s: ServiceResource): Service {
    const ns = s.metadata.namespace ?? '';
    const vip = s.spec.clusterIP;
    return Service.fromPartial({
      name: s.metadata.name,
      namespace: ns,
      hostname: serviceHostname(ns, s.metadata.name, this.options.domainSuffix),
      addresses: vip && vip !== 'None' ? [{ network: '', address: ipBytes(vip) }] : [],
      ports: s.spec.ports
        .filter((p) => p.protocol === 'TCP')
        .map((p) => {
          const target = targetPortOf(p);
          // A named target port is resolved per workload (Workload.services); 0 here.
          return Port.fromPartial({ servicePort: p.port, targetPort: typeof target === 'number' ? target : 0 });
        }),
      waypoint: this.serviceWaypoint(s),
    });
  }

  /** The Service's waypoint: resolved, unresolved (no destination), or undefined for none. */
  private serviceWaypoint(s: ServiceResource): GatewayAddress | undefined {
    if (this.serviceWaypoints.has(s)) return this.serviceWaypoints.get(s);
    const ns = s.metadata.namespace ?? '';
    const nsLabels = this.namespaces.get(ns)?.metadata.labels ?? {};
    const wp = this.waypointFor(s.metadata.labels ?? {}, nsLabels, ns, 'service', `Service ${ns}/${s.metadata.name}`);
    this.serviceWaypoints.set(s, wp);
    return wp;
  }

  /** No waypoint would enforce a targetRefs policy on this Service (none, or unresolved). */
  private lacksWaypoint(s: ServiceResource): boolean {
    return this.serviceWaypoint(s)?.destination === undefined;
  }

  private waypointFor(
    labels: Readonly<Record<string, string>>,
    nsLabels: Readonly<Record<string, string>>,
    ns: string,
    use: WaypointUse,
    who: string,
  ): GatewayAddress | undefined {
    const own = meshLabel(labels, USE_WAYPOINT_LABEL);
    const name = own ?? meshLabel(nsLabels, USE_WAYPOINT_LABEL);
    if (!name || name === 'none') return undefined;
    const gwNs = meshLabel(own !== undefined ? labels : nsLabels, USE_WAYPOINT_NAMESPACE_LABEL) ?? ns;
    const gateway = `${gwNs}/${name}`;
    const key = `${use}|${gateway}`;
    let result = this.waypointCache.get(key);
    if (result === undefined) this.waypointCache.set(key, (result = this.resolveWaypoint(gwNs, name, use)));
    if (typeof result !== 'string' && !('notFor' in result)) return result;
    let reason: string;
    if (typeof result === 'string') reason = result;
    else if (own !== undefined) reason = `the Gateway is for ${result.notFor} traffic (${WAYPOINT_FOR_LABEL}), not ${use}`;
    // A namespace-wide waypoint that is not for this kind of traffic (e.g. waypoint-for: service,
    // seen from a workload) is normal: no waypoint, not reported.
    else return undefined;
    // Reported once per waypoint (and kind of use).
    if (!this.waypointWarned.has(key)) {
      this.waypointWarned.add(key);
      this.warnings.push(`${who}: waypoint ${gateway} cannot be used: ${reason}; traffic to it is refused (fail closed) until the waypoint resolves`);
    }
    return unresolvedWaypoint(gateway, reason);
  }

  /** The waypoint's address, or why there is none. */
  private resolveWaypoint(ns: string, name: string, use: WaypointUse): GatewayAddress | { notFor: string } | string {
    const gw: Gateway | undefined = this.snapshot.get('Gateway', name, ns);
    if (!gw) return `no Gateway ${ns}/${name}`;
    const forWhat = meshLabel(gw.metadata.labels, WAYPOINT_FOR_LABEL) ?? 'service';
    if (forWhat !== 'all' && forWhat !== use) return { notFor: forWhat };
    const hboneMtlsPort = gw.spec.listeners.find((l) => l.protocol === 'HBONE')?.port ?? HBONE_PORT;
    const gateway = `${ns}/${name}`;
    const ip = gw.spec.addresses?.find((a) => a.type === 'IPAddress')?.value;
    if (ip) return GatewayAddress.fromPartial({ destination: { $case: 'address', value: { network: '', address: ipBytes(ip) } }, hboneMtlsPort, gateway });
    const selector = { [GATEWAY_NAME_LABEL]: name };
    // A waypoint pod that has no IP yet (published once scheduled) cannot be the address.
    const instance = this.snapshot.list('Workload', { namespace: ns }).find((w) => w.spec.addresses.length > 0 && matchesLabels(w.metadata.labels, selector));
    if (instance) {
      return GatewayAddress.fromPartial({
        destination: { $case: 'address', value: { network: '', address: ipBytes(instance.spec.addresses[0]!) } },
        hboneMtlsPort,
        gateway,
      });
    }
    const svc = (this.servicesByNs.get(ns) ?? []).find((s) => matchesLabels(s.metadata.labels, selector));
    if (svc) {
      return GatewayAddress.fromPartial({
        destination: {
          $case: 'hostname',
          value: { namespace: ns, hostname: serviceHostname(ns, svc.metadata.name, this.options.domainSuffix) },
        },
        hboneMtlsPort,
        gateway,
      });
    }
    return `the Gateway has no IPAddress and no Workload or Service labelled ${GATEWAY_NAME_LABEL}=${name}`;
  }

  authorization(p: AuthorizationPolicy): Authorization | undefined {
    if (p.spec.targetRefs) return this.unenforcedTargetRefs(p);
    const ns = p.metadata.namespace ?? '';
    const scope = p.spec.selector
      ? AuthorizationScope.AUTHORIZATION_SCOPE_WORKLOAD_SELECTOR
      : ns === this.options.rootNamespace
        ? AuthorizationScope.AUTHORIZATION_SCOPE_GLOBAL
        : AuthorizationScope.AUTHORIZATION_SCOPE_NAMESPACE;
    const deny = p.spec.action === 'DENY';
    const rules = (p.spec.rules ?? []).map((rule) => translateRule(rule, deny));
    return Authorization.fromPartial({
      name: p.metadata.name,
      namespace: ns,
      scope,
      action: deny ? AuthorizationAction.AUTHORIZATION_ACTION_DENY : AuthorizationAction.AUTHORIZATION_ACTION_ALLOW,
      rules,
    });
  }

  /**
   * A targetRefs policy is the waypoint's (undefined here), unless a Service it targets has no
   * usable waypoint: then it is a DENY of everything for that Service's workloads, its rule
   * naming those Services, so the node proxies refuse rather than nobody enforcing the policy.
   */
  private unenforcedTargetRefs(p: AuthorizationPolicy): Authorization | undefined {
    const ns = p.metadata.namespace ?? '';
    const attributes: string[] = [];
    for (const key of [...new Set(targetedServices(p))].sort()) {
      const [svcNs, svcName] = splitKey(key);
      const svc = this.snapshot.get('Service', svcName, svcNs);
      if (!svc || !this.lacksWaypoint(svc)) continue; // a missing Service selects nothing
      attributes.push(unenforcedTargetRefAttribute(svcNs, svcName));
      const wp = this.serviceWaypoint(svc);
      const why = wp ? `whose waypoint ${wp.gateway} cannot be used (${wp.unresolvedReason})` : 'which has no waypoint';
      this.warnings.push(
        `AuthorizationPolicy ${ns}/${p.metadata.name}: targets Service ${key} (targetRefs), ${why}; only a waypoint enforces targetRefs policies, ` +
          `so node proxies refuse every connection to the Service's workloads (fail closed) until it has one; ` +
          'attach a waypoint (nodemesh.io/use-waypoint) or select the workloads with spec.selector instead',
      );
    }
    if (attributes.length === 0) return undefined;
    return Authorization.fromPartial({
      name: p.metadata.name,
      namespace: ns,
      scope: AuthorizationScope.AUTHORIZATION_SCOPE_WORKLOAD_SELECTOR,
      action: AuthorizationAction.AUTHORIZATION_ACTION_DENY,
      // An empty rule matches every connection.
      rules: [Rule.fromPartial({ clauses: [], l7Attributes: attributes })],
    });
  }
}

/** "<ns>/<name>" of every Service a policy's targetRefs name (Gateway refs are not Services). */
function targetedServices(p: AuthorizationPolicy): string[] {
  const ns = p.metadata.namespace ?? '';
  return (p.spec.targetRefs ?? []).filter((r) => r.kind === 'Service').map((r) => `${r.namespace ?? ns}/${r.name}`);
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}

/** A waypoint reference that cannot be used: the Gateway's name and why, no destination. */
export function unresolvedWaypoint(gateway: string, reason: string): GatewayAddress {
  return GatewayAddress.fromPartial({ gateway, unresolvedReason: reason });
}

/**
 * The L4 part of a rule, naming the L7 attributes it used in `l7Attributes`.
 * DENY: every alternative keeps its L4 part, L7 `when` conditions are dropped (denies more).
 * ALLOW: if every clause keeps an alternative that needs no L7 (and no `when` needs L7), the rule
 * is sent with those alternatives only and no L7 attributes — it matches at L4 exactly where the
 * original could without a request; otherwise it is sent with the L4 part of every alternative
 * plus the attributes, and matches only where a waypoint checks the rest.
 */
function translateRule(rule: PolicyRule, deny: boolean): Rule {
  const l7 = new Set<string>();
  const all: Clause[] = [];
  const l4Only: Clause[] = [];
  let matchesAtL4 = true;
  const clause = (alternatives: Array<{ match: Match; l7: readonly string[] }>): void => {
    for (const a of alternatives) for (const name of a.l7) l7.add(name);
    all.push(Clause.fromPartial({ matches: alternatives.map((a) => a.match) }));
    const plain = alternatives.filter((a) => a.l7.length === 0).map((a) => a.match);
    if (plain.length === 0) matchesAtL4 = false;
    else l4Only.push(Clause.fromPartial({ matches: plain }));
  };
  // An empty `from`/`to` list constrains nothing, as an absent one (Istio).
  if (rule.from?.length) clause(rule.from.map(({ source }) => sourceMatch(source)));
  if (rule.to?.length) clause(rule.to.map(({ operation }) => operationMatch(operation)));
  for (const condition of rule.when ?? []) {
    const match = conditionMatch(condition);
    if (match) clause([{ match, l7: [] }]);
    else {
      l7.add(condition.key);
      matchesAtL4 = false;
    }
  }
  if (!deny && l7.size > 0 && matchesAtL4) return Rule.fromPartial({ clauses: l4Only });
  return Rule.fromPartial({ clauses: all, l7Attributes: [...l7] });
}

const SOURCE_L7_FIELDS = ['requestPrincipals', 'notRequestPrincipals'] as const;
const OPERATION_L7_FIELDS = ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'] as const;

function sourceMatch(s: Source): { match: Match; l7: string[] } {
  const match = Match.fromPartial({
    principals: (s.principals ?? []).map(stringMatch),
    notPrincipals: (s.notPrincipals ?? []).map(stringMatch),
    namespaces: (s.namespaces ?? []).map(stringMatch),
    notNamespaces: (s.notNamespaces ?? []).map(stringMatch),
    // Without L7 there is no X-Forwarded-For: the remote address is the peer's address.
    sourceIps: [...(s.ipBlocks ?? []), ...(s.remoteIpBlocks ?? [])].map(cidrOf),
    notSourceIps: [...(s.notIpBlocks ?? []), ...(s.notRemoteIpBlocks ?? [])].map(cidrOf),
  });
  return { match, l7: SOURCE_L7_FIELDS.filter((f) => s[f] !== undefined) };
}

function operationMatch(o: Operation): { match: Match; l7: string[] } {
  const match = Match.fromPartial({
    destinationPorts: (o.ports ?? []).map(Number),
    notDestinationPorts: (o.notPorts ?? []).map(Number),
  });
  return { match, l7: OPERATION_L7_FIELDS.filter((f) => o[f] !== undefined) };
}

/** A `when` condition as a match, or undefined when it needs L7 attributes. */
function conditionMatch(c: Condition): Match | undefined {
  const values = c.values ?? [];
  const notValues = c.notValues ?? [];
  switch (c.key) {
    case 'source.ip':
    case 'remote.ip':
      return Match.fromPartial({ sourceIps: values.map(cidrOf), notSourceIps: notValues.map(cidrOf) });
    case 'destination.ip':
      return Match.fromPartial({ destinationIps: values.map(cidrOf), notDestinationIps: notValues.map(cidrOf) });
    case 'destination.port':
      return Match.fromPartial({ destinationPorts: values.map(Number), notDestinationPorts: notValues.map(Number) });
    case 'source.namespace':
      return Match.fromPartial({ namespaces: values.map(stringMatch), notNamespaces: notValues.map(stringMatch) });
    case 'source.principal':
      return Match.fromPartial({ principals: values.map(stringMatch), notPrincipals: notValues.map(stringMatch) });
    default:
      return undefined;
  }
}

/** Istio match strings: "*" (any non-empty), "prefix*", "*suffix", or exact. */
export function stringMatch(s: string): StringMatch {
  if (s === '*') return StringMatch.fromPartial({ matchType: { $case: 'presence', value: true } });
  if (s.endsWith('*')) return StringMatch.fromPartial({ matchType: { $case: 'prefix', value: s.slice(0, -1) } });
  if (s.startsWith('*')) return StringMatch.fromPartial({ matchType: { $case: 'suffix', value: s.slice(1) } });
  return StringMatch.fromPartial({ matchType: { $case: 'exact', value: s } });
}

/** The whole workload API for one snapshot. */
export function translateWorkloadApi(snapshot: Snapshot, options: TranslateOptions = DEFAULT_TRANSLATE_OPTIONS): WorkloadApiState {
  return new WorkloadApiTranslator(options).translate(snapshot);
}

/**
 * Translation across successive snapshots. Store snapshots share unchanged (frozen) resource
 * objects, so when nothing a Workload's translation depends on besides the Workload itself has
 * changed — Namespaces, Services, Gateways, AuthorizationPolicies and waypoint instances are
 * the same objects as last time — the previous messages of unchanged Workloads are reused as
 * is (same object: the encoder then skips them too). Any other change translates everything.
 */
export class WorkloadApiTranslator {
  private context: readonly object[] = [];
  private workloads = new Map<WorkloadResource, Address>();
  private services = new Map<ServiceResource, Address>();
  private authorizations = new Map<string, Authorization>();
  private peerAuthentications = new Map<string, PeerAuthentication>();
  private warnings: string[] = [];
  /** How many Workload messages the last translate() reused. */
  reused = 0;

  constructor(private readonly options: TranslateOptions = DEFAULT_TRANSLATE_OPTIONS) {}

  translate(snapshot: Snapshot): WorkloadApiState {
    const workloads = snapshot.list('Workload');
    const context: object[] = [
      ...snapshot.list('Namespace'),
      ...snapshot.list('Service'),
      ...snapshot.list('Gateway'),
      ...snapshot.list('AuthorizationPolicy'),
      ...snapshot.list('PeerAuthentication'),
      ...workloads.filter((w) => w.metadata.labels?.[GATEWAY_NAME_LABEL] !== undefined),
    ];
    const same = context.length === this.context.length && context.every((x, i) => x === this.context[i]);
    this.context = context;
    const t = new Translation(snapshot, this.options);

    const addresses = new Map<string, Address>();
    const workloadMemo = new Map<WorkloadResource, Address>();
    this.reused = 0;
    for (const w of workloads) {
      let address = same ? this.workloads.get(w) : undefined;
      if (address) this.reused++;
      else address = Address.fromPartial({ type: { $case: 'workload', value: t.workload(w) } });
      workloadMemo.set(w, address);
      const ns = w.metadata.namespace ?? '';
      addresses.set(workloadUid(ns, w.metadata.name), address);
    }
    const serviceMemo = new Map<ServiceResource, Address>();
    for (const s of snapshot.list('Service')) {
      const address = (same && this.services.get(s)) || Address.fromPartial({ type: { $case: 'service', value: t.service(s) } });
      serviceMemo.set(s, address);
      const ns = s.metadata.namespace ?? '';
      addresses.set(serviceResourceName(ns, serviceHostname(ns, s.metadata.name, this.options.domainSuffix)), address);
    }
    let authorizations = this.authorizations;
    let peerAuthentications = this.peerAuthentications;
    if (!same) {
      authorizations = new Map();
      for (const p of snapshot.list('AuthorizationPolicy')) {
        const authz = t.authorization(p);
        if (authz) authorizations.set(`${authz.namespace}/${authz.name}`, authz);
      }
      peerAuthentications = new Map();
      for (const p of snapshot.list('PeerAuthentication')) {
        const pa = translatePeerAuthentication(p, this.options.rootNamespace);
        peerAuthentications.set(`${pa.namespace}/${pa.name}`, pa);
      }
    }
    // Reused messages raise no new warnings; keep the ones they raised before.
    const warnings = same ? [...new Set([...this.warnings, ...t.warnings])] : t.warnings;
    this.workloads = workloadMemo;
    this.services = serviceMemo;
    this.authorizations = authorizations;
    this.peerAuthentications = peerAuthentications;
    this.warnings = warnings;
    return { addresses, authorizations: new Map(authorizations), peerAuthentications: new Map(peerAuthentications), warnings: [...warnings] };
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function sortedRecord<V>(record: Record<string, V>): Record<string, V> {
  const out: Record<string, V> = {};
  for (const key of Object.keys(record).sort()) out[key] = record[key]!;
  return out;
}
