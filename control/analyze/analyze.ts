// `nodemesh analyze`: configuration that is valid resource by resource but wrong together — a
// route to a Service that does not exist, a policy that selects nothing, a waypoint label naming
// no waypoint, an enrolled namespace whose nodes run no node proxy. Pure: resources (and the node
// proxies connected to the control plane, when known) in, findings out.
import {
  DATAPLANE_MODE_LABEL,
  isWaypointClass,
  matchesLabels,
  meshLabel,
  USE_WAYPOINT_LABEL,
  USE_WAYPOINT_NAMESPACE_LABEL,
  type AnyResource,
  type KindMap,
  type KindName,
} from '../resources';

export type Severity = 'Error' | 'Warning';

export interface Finding {
  readonly severity: Severity;
  /** Stable code, e.g. NM0101 (docs/analyze.md lists them). */
  readonly code: string;
  /** `Kind/namespace/name` of the resource the finding is about. */
  readonly resource: string;
  readonly message: string;
}

export interface AnalyzeInput {
  readonly resources: readonly AnyResource[];
  /** The namespace whose selector-less policies apply mesh-wide (the control plane's NODEMESH_ROOT_NAMESPACE; default nodemesh-system). */
  readonly rootNamespace?: string;
  /** Nodes whose node proxy is connected to the control plane; undefined when unknown (that check is skipped). */
  readonly connectedNodes?: ReadonlySet<string>;
}

const ref = (r: AnyResource): string => `${r.kind}/${r.metadata.namespace ? `${r.metadata.namespace}/` : ''}${r.metadata.name}`;

class Index {
  private readonly byKind = new Map<string, AnyResource[]>();
  private readonly keys = new Set<string>();
  constructor(resources: readonly AnyResource[]) {
    for (const r of resources) {
      const list = this.byKind.get(r.kind) ?? [];
      list.push(r);
      this.byKind.set(r.kind, list);
      this.keys.add(`${r.kind}/${r.metadata.namespace ?? ''}/${r.metadata.name}`);
    }
  }
  list<K extends KindName>(kind: K): KindMap[K][] {
    return (this.byKind.get(kind) ?? []) as KindMap[K][];
  }
  has(kind: KindName, namespace: string, name: string): boolean {
    return this.keys.has(`${kind}/${namespace}/${name}`);
  }
  namespaceLabels(ns: string | undefined): Record<string, string> {
    return this.list('Namespace').find((n) => n.metadata.name === ns)?.metadata.labels ?? {};
  }
  isWaypoint(ns: string, name: string): boolean {
    return this.list('Gateway').some((g) => g.metadata.namespace === ns && g.metadata.name === name && isWaypointClass(g.spec.gatewayClassName));
  }
}

function routeFindings(ix: Index, out: Finding[]): void {
  for (const r of ix.list('HTTPRoute')) {
    const ns = r.metadata.namespace ?? '';
    for (const p of r.spec.parentRefs) {
      if (!ix.has('Service', p.namespace ?? ns, p.name)) {
        out.push({
          severity: 'Error',
          code: 'NM0101',
          resource: ref(r),
          message: `parentRef Service ${p.namespace ?? ns}/${p.name} does not exist: the route applies to nothing`,
        });
      }
    }
    r.spec.rules.forEach((rule, i) => {
      for (const b of rule.backendRefs ?? []) {
        if (!ix.has('Service', b.namespace ?? ns, b.name)) {
          out.push({
            severity: 'Error',
            code: 'NM0102',
            resource: ref(r),
            message: `rules[${i}] backendRef Service ${b.namespace ?? ns}/${b.name} does not exist: requests routed there fail`,
          });
        }
      }
    });
  }
}

const ISTIO_ROOT_NAMESPACE = 'istio-system';
export const DEFAULT_ROOT_NAMESPACE = 'nodemesh-system';

function policyFindings(ix: Index, rootNamespace: string, out: Finding[]): void {
  const workloads = ix.list('Workload');
  for (const p of [...ix.list('AuthorizationPolicy'), ...ix.list('PeerAuthentication')]) {
    const ns = p.metadata.namespace ?? '';
    const selector = p.spec.selector?.matchLabels;
    if (selector && !workloads.some((w) => w.metadata.namespace === ns && matchesLabels(w.metadata.labels, selector))) {
      const text = Object.entries(selector)
        .map(([k, v]) => `${k}=${v}`)
        .join(',');
      out.push({
        severity: 'Warning',
        code: 'NM0201',
        resource: ref(p),
        message: `selector ${text} matches no workload in namespace ${ns}: the policy applies to nothing`,
      });
    }
    // Istio's mesh-wide policies live in its root namespace, istio-system; applied unchanged here
    // they would bind only workloads in istio-system, silently.
    const targeted = p.kind === 'AuthorizationPolicy' && (p.spec.targetRefs?.length ?? 0) > 0;
    if (ns === ISTIO_ROOT_NAMESPACE && rootNamespace !== ISTIO_ROOT_NAMESPACE && !selector && !targeted) {
      out.push({
        severity: 'Warning',
        code: 'NM0203',
        resource: ref(p),
        message: `in Istio's root namespace ${ISTIO_ROOT_NAMESPACE}, where Istio applies it mesh-wide; nodemesh's mesh-wide policies live in ${rootNamespace}, so this one applies only to workloads in ${ISTIO_ROOT_NAMESPACE}: move it to ${rootNamespace}, or run the control plane with NODEMESH_ROOT_NAMESPACE=${ISTIO_ROOT_NAMESPACE}`,
      });
    }
    if (p.kind !== 'AuthorizationPolicy') continue;
    for (const t of p.spec.targetRefs ?? []) {
      const tns = t.namespace ?? ns;
      if (!ix.has(t.kind, tns, t.name)) {
        out.push({
          severity: 'Error',
          code: 'NM0202',
          resource: ref(p),
          message: `targetRef ${t.kind} ${tns}/${t.name} does not exist: the policy applies to nothing`,
        });
      }
    }
  }
}

function waypointFindings(ix: Index, out: Finding[]): void {
  for (const r of [...ix.list('Namespace'), ...ix.list('Service'), ...ix.list('Workload')]) {
    const name = meshLabel(r.metadata.labels, USE_WAYPOINT_LABEL);
    if (!name || name === 'none') continue;
    const ns = meshLabel(r.metadata.labels, USE_WAYPOINT_NAMESPACE_LABEL) ?? (r.kind === 'Namespace' ? r.metadata.name : (r.metadata.namespace ?? ''));
    if (!ix.isWaypoint(ns, name)) {
      out.push({
        severity: 'Error',
        code: 'NM0301',
        resource: ref(r),
        message: `uses waypoint ${ns}/${name}, which is not a waypoint Gateway: traffic to it is refused (fail closed); create it with 'nodemesh waypoint apply -n ${ns} --name ${name}'`,
      });
    }
  }
}

function nodeProxyFindings(ix: Index, connected: ReadonlySet<string>, out: Finding[]): void {
  const missing = new Map<string, Set<string>>();
  for (const w of ix.list('Workload')) {
    const mode = meshLabel(w.metadata.labels, DATAPLANE_MODE_LABEL) ?? meshLabel(ix.namespaceLabels(w.metadata.namespace), DATAPLANE_MODE_LABEL);
    if (mode !== 'ambient' || connected.has(w.spec.node)) continue;
    const ns = w.metadata.namespace ?? '';
    const nodes = missing.get(ns) ?? new Set<string>();
    nodes.add(w.spec.node);
    missing.set(ns, nodes);
  }
  for (const [ns, nodes] of missing) {
    out.push({
      severity: 'Warning',
      code: 'NM0401',
      resource: `Namespace/${ns}`,
      message: `enrolled workloads run on node(s) ${[...nodes].sort().join(', ')}, where no node proxy is connected to the control plane: they are not in the mesh`,
    });
  }
}

export function analyze(input: AnalyzeInput): Finding[] {
  const ix = new Index(input.resources);
  const out: Finding[] = [];
  routeFindings(ix, out);
  policyFindings(ix, input.rootNamespace ?? DEFAULT_ROOT_NAMESPACE, out);
  waypointFindings(ix, out);
  if (input.connectedNodes) nodeProxyFindings(ix, input.connectedNodes, out);
  const rank = (s: Severity): number => (s === 'Error' ? 0 : 1);
  return out.sort((a, b) => rank(a.severity) - rank(b.severity) || a.resource.localeCompare(b.resource) || a.code.localeCompare(b.code));
}
