// Translation of a store snapshot into the workload API (api/proto/nodemesh/workload/v1): one
// Address per Workload and per Service, one Authorization per L4-enforceable AuthorizationPolicy.
// Pure: the same snapshot always gives the same messages, in the same byte encoding.
//
// Decisions (see docs/xds.md):
// - Resource names: a Workload's uid is "Workload/<ns>/<name>" (stable across delete and
//   re-create, so reconnecting node proxies keep what they have); a Service is "<ns>/<hostname>";
//   an Authorization is "<ns>/<name>".
// - Enrolment: nodemesh.io/dataplane-mode on the Workload wins over its Namespace's; "ambient"
//   means HBONE, anything else plain TCP.
// - Waypoints: nodemesh.io/use-waypoint on the Workload/Service wins over the Namespace's ("none"
//   stops inheritance). The Gateway must exist, be for the right traffic (waypoint-for), and have
//   an address: spec.addresses (IPAddress), else a Workload labelled
//   gateway.networking.k8s.io/gateway-name=<gateway>, else a Service so labelled (by host name).
//   An unresolvable waypoint is left out and reported as a warning.
// - Authorization: only what a node proxy can check at L4. AuthorizationPolicies with targetRefs
//   belong to waypoints and are skipped. For ALLOW, a rule that needs L7 attributes can never
//   match at L4 and is dropped; for DENY, the L7 attributes are dropped so the rule denies more
//   (fail closed) — as ztunnel does.
import {
  DATAPLANE_MODE_LABEL,
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

export const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';
export const DEFAULT_HBONE_PORT = 15008;

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
  private readonly waypointCache = new Map<string, GatewayAddress | null>();

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
    }
  }

  workload(w: WorkloadResource): Workload {
    const ns = w.metadata.namespace ?? '';
    const labels = w.metadata.labels ?? {};
    const nsLabels = this.namespaces.get(ns)?.metadata.labels ?? {};
    const mode = labels[DATAPLANE_MODE_LABEL] ?? nsLabels[DATAPLANE_MODE_LABEL];

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
      canonicalName: labels['app.kubernetes.io/name'] ?? labels['app'] ?? w.metadata.name,
      canonicalRevision: labels['app.kubernetes.io/version'] ?? labels['version'] ?? 'latest',
      trustDomain: this.options.trustDomain,
      status: WorkloadStatus.WORKLOAD_STATUS_HEALTHY,
      authorizationPolicies: policies,
      runtime:
        w.spec.netnsPath || w.spec.cgroupPath ? { netns: w.spec.netnsPath ?? '', cgroup: w.spec.cgroupPath ?? '' } : undefined,
      workloadType: 'Workload',
    });
  }

  service(s: ServiceResource): Service {
    const ns = s.metadata.namespace ?? '';
    const nsLabels = this.namespaces.get(ns)?.metadata.labels ?? {};
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
      waypoint: this.waypointFor(s.metadata.labels ?? {}, nsLabels, ns, 'service', `Service ${ns}/${s.metadata.name}`),
    });
  }

  private waypointFor(
    labels: Readonly<Record<string, string>>,
    nsLabels: Readonly<Record<string, string>>,
    ns: string,
    use: WaypointUse,
    who: string,
  ): GatewayAddress | undefined {
    const own = labels[USE_WAYPOINT_LABEL];
    const name = own ?? nsLabels[USE_WAYPOINT_LABEL];
    if (!name || name === 'none') return undefined;
    const gwNs = (own !== undefined ? labels : nsLabels)[USE_WAYPOINT_NAMESPACE_LABEL] ?? ns;
    const key = `${use}|${gwNs}/${name}`;
    let resolved = this.waypointCache.get(key);
    if (resolved === undefined) {
      const result = this.resolveWaypoint(gwNs, name, use);
      resolved = typeof result === 'string' || 'notFor' in result ? null : result;
      this.waypointCache.set(key, resolved);
      // Reported once per waypoint. A namespace-wide waypoint that is not for this kind of traffic
      // (e.g. waypoint-for: service, seen from a workload) is normal and not reported.
      if (typeof result === 'string') this.warnings.push(`${who}: waypoint ${gwNs}/${name} left out: ${result}`);
      else if ('notFor' in result && own !== undefined) {
        this.warnings.push(`${who}: waypoint ${gwNs}/${name} left out: the Gateway is for ${result.notFor} traffic (${WAYPOINT_FOR_LABEL}), not ${use}`);
      }
    }
    return resolved ?? undefined;
  }

  /** The waypoint's address, or why there is none. */
  private resolveWaypoint(ns: string, name: string, use: WaypointUse): GatewayAddress | { notFor: string } | string {
    const gw: Gateway | undefined = this.snapshot.get('Gateway', name, ns);
    if (!gw) return `no Gateway ${ns}/${name}`;
    const forWhat = gw.metadata.labels?.[WAYPOINT_FOR_LABEL] ?? 'service';
    if (forWhat !== 'all' && forWhat !== use) return { notFor: forWhat };
    const hboneMtlsPort = gw.spec.listeners.find((l) => l.protocol === 'HBONE')?.port ?? DEFAULT_HBONE_PORT;
    const ip = gw.spec.addresses?.find((a) => a.type === 'IPAddress')?.value;
    if (ip) return GatewayAddress.fromPartial({ destination: { $case: 'address', value: { network: '', address: ipBytes(ip) } }, hboneMtlsPort });
    const selector = { [GATEWAY_NAME_LABEL]: name };
    const instance = this.snapshot.list('Workload', { namespace: ns }).find((w) => matchesLabels(w.metadata.labels, selector));
    if (instance) {
      return GatewayAddress.fromPartial({
        destination: { $case: 'address', value: { network: '', address: ipBytes(instance.spec.addresses[0]!) } },
        hboneMtlsPort,
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
      });
    }
    return `the Gateway has no IPAddress and no Workload or Service labelled ${GATEWAY_NAME_LABEL}=${name}`;
  }

  authorization(p: AuthorizationPolicy): Authorization | undefined {
    if (p.spec.targetRefs) return undefined; // enforced by the waypoint
    const ns = p.metadata.namespace ?? '';
    const scope = p.spec.selector
      ? AuthorizationScope.AUTHORIZATION_SCOPE_WORKLOAD_SELECTOR
      : ns === this.options.rootNamespace
        ? AuthorizationScope.AUTHORIZATION_SCOPE_GLOBAL
        : AuthorizationScope.AUTHORIZATION_SCOPE_NAMESPACE;
    const deny = p.spec.action === 'DENY';
    const rules: Rule[] = [];
    for (const rule of p.spec.rules ?? []) {
      const translated = translateRule(rule, deny);
      if (translated) rules.push(translated);
    }
    return Authorization.fromPartial({
      name: p.metadata.name,
      namespace: ns,
      scope,
      action: deny ? AuthorizationAction.AUTHORIZATION_ACTION_DENY : AuthorizationAction.AUTHORIZATION_ACTION_ALLOW,
      rules,
    });
  }
}

/** The L4 part of a rule; undefined when (ALLOW) the rule needs L7 attributes and cannot match. */
function translateRule(rule: PolicyRule, deny: boolean): Rule | undefined {
  const clauses: Clause[] = [];
  let needsL7 = false;
  if (rule.from) {
    const matches: Match[] = [];
    for (const { source } of rule.from) {
      const { match, l7 } = sourceMatch(source);
      if (l7 && !deny) continue; // this alternative cannot match at L4
      matches.push(match);
    }
    if (matches.length === 0) return undefined;
    clauses.push(Clause.fromPartial({ matches }));
  }
  if (rule.to) {
    const matches: Match[] = [];
    for (const { operation } of rule.to) {
      const { match, l7 } = operationMatch(operation);
      if (l7 && !deny) continue;
      matches.push(match);
    }
    if (matches.length === 0) return undefined;
    clauses.push(Clause.fromPartial({ matches }));
  }
  for (const condition of rule.when ?? []) {
    const match = conditionMatch(condition);
    if (!match) {
      needsL7 = true;
      continue;
    }
    clauses.push(Clause.fromPartial({ matches: [match] }));
  }
  if (needsL7 && !deny) return undefined;
  return Rule.fromPartial({ clauses });
}

function sourceMatch(s: Source): { match: Match; l7: boolean } {
  const match = Match.fromPartial({
    principals: (s.principals ?? []).map(stringMatch),
    notPrincipals: (s.notPrincipals ?? []).map(stringMatch),
    namespaces: (s.namespaces ?? []).map(stringMatch),
    notNamespaces: (s.notNamespaces ?? []).map(stringMatch),
    // Without L7 there is no X-Forwarded-For: the remote address is the peer's address.
    sourceIps: [...(s.ipBlocks ?? []), ...(s.remoteIpBlocks ?? [])].map(cidrOf),
    notSourceIps: [...(s.notIpBlocks ?? []), ...(s.notRemoteIpBlocks ?? [])].map(cidrOf),
  });
  return { match, l7: s.requestPrincipals !== undefined || s.notRequestPrincipals !== undefined };
}

function operationMatch(o: Operation): { match: Match; l7: boolean } {
  const match = Match.fromPartial({
    destinationPorts: (o.ports ?? []).map(Number),
    notDestinationPorts: (o.notPorts ?? []).map(Number),
  });
  const l7 = [o.hosts, o.notHosts, o.methods, o.notMethods, o.paths, o.notPaths].some((v) => v !== undefined);
  return { match, l7 };
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
    if (!same) {
      authorizations = new Map();
      for (const p of snapshot.list('AuthorizationPolicy')) {
        const authz = t.authorization(p);
        if (authz) authorizations.set(`${authz.namespace}/${authz.name}`, authz);
      }
    }
    // Reused messages raise no new warnings; keep the ones they raised before.
    const warnings = same ? [...new Set([...this.warnings, ...t.warnings])] : t.warnings;
    this.workloads = workloadMemo;
    this.services = serviceMemo;
    this.authorizations = authorizations;
    this.warnings = warnings;
    return { addresses, authorizations: new Map(authorizations), warnings: [...warnings] };
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
