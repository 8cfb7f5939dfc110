// The mesh's own labels and their allowed values, and Istio's equivalents, accepted unchanged so
// that existing ambient configuration applies (docs/istio.md).
import { dnsLabel, dnsSubdomain } from './fields';
import type { ValidationIssue } from './validation';

/** `ambient` enrols a Namespace or workload in the mesh; `none` opts out. The workload wins. */
export const DATAPLANE_MODE_LABEL = 'nodemesh.io/dataplane-mode';
/** `<gateway>` or `none` on a Namespace, Service or workload: which waypoint its traffic uses. */
export const USE_WAYPOINT_LABEL = 'nodemesh.io/use-waypoint';
/** Namespace of the waypoint named by use-waypoint, when it is not the resource's own. */
export const USE_WAYPOINT_NAMESPACE_LABEL = 'nodemesh.io/use-waypoint-namespace';
/** On a Gateway: which traffic the waypoint handles. */
export const WAYPOINT_FOR_LABEL = 'nodemesh.io/waypoint-for';

/** The mesh labels read by the control plane. */
export type MeshLabelKey = typeof DATAPLANE_MODE_LABEL | typeof USE_WAYPOINT_LABEL | typeof USE_WAYPOINT_NAMESPACE_LABEL | typeof WAYPOINT_FOR_LABEL;

/** Istio's label for each mesh label: same values, same meaning; the nodemesh.io one wins when both are set. */
export const ISTIO_LABELS: Readonly<Record<MeshLabelKey, string>> = {
  [DATAPLANE_MODE_LABEL]: 'istio.io/dataplane-mode',
  [USE_WAYPOINT_LABEL]: 'istio.io/use-waypoint',
  [USE_WAYPOINT_NAMESPACE_LABEL]: 'istio.io/use-waypoint-namespace',
  [WAYPOINT_FOR_LABEL]: 'istio.io/waypoint-for',
};

/** A mesh label's value on an object: its nodemesh.io label, else its Istio equivalent. */
export function meshLabel(labels: Readonly<Record<string, string>> | undefined, key: MeshLabelKey): string | undefined {
  return labels?.[key] ?? labels?.[ISTIO_LABELS[key]];
}

/** Whether an object carries a mesh label (either spelling). */
export function hasMeshLabel(labels: Readonly<Record<string, string>> | undefined, key: MeshLabelKey): boolean {
  return meshLabel(labels, key) !== undefined;
}

export const DATAPLANE_MODES = ['ambient', 'none'] as const;
export type DataplaneMode = (typeof DATAPLANE_MODES)[number];
export const WAYPOINT_FOR = ['service', 'workload', 'all', 'none'] as const;
export type WaypointFor = (typeof WAYPOINT_FOR)[number];

/** Checks the mesh labels on a resource of `kind`; returns issues with `metadata.labels[...]` paths. */
export function meshLabelIssues(kind: string, labels: Record<string, string> | undefined): ValidationIssue[] {
  if (!labels) return [];
  const issues: ValidationIssue[] = [];
  // Each mesh label in either spelling; the error names the key the user wrote.
  const present = (key: MeshLabelKey): [string, string][] =>
    [key, ISTIO_LABELS[key]].flatMap((k) => (labels[k] !== undefined ? [[k, labels[k]] as [string, string]] : []));
  const at = (key: string) => `metadata.labels[${JSON.stringify(key)}]`;
  for (const [k, mode] of present(DATAPLANE_MODE_LABEL)) {
    if (!(DATAPLANE_MODES as readonly string[]).includes(mode)) {
      issues.push({ path: at(k), message: `must be one of ${DATAPLANE_MODES.join(', ')}, got "${mode}"` });
    } else if (kind !== 'Namespace' && kind !== 'Workload') {
      issues.push({ path: at(k), message: 'only applies to a Namespace or a Workload' });
    }
  }
  for (const [k, waypoint] of present(USE_WAYPOINT_LABEL)) {
    if (waypoint !== 'none' && !dnsSubdomain.safeParse(waypoint).success) {
      issues.push({ path: at(k), message: `must be the name of a Gateway or "none", got "${waypoint}"` });
    } else if (kind !== 'Namespace' && kind !== 'Service' && kind !== 'Workload') {
      issues.push({ path: at(k), message: 'only applies to a Namespace, Service or Workload' });
    }
  }
  for (const [k, waypointNs] of present(USE_WAYPOINT_NAMESPACE_LABEL)) {
    if (!dnsLabel.safeParse(waypointNs).success) {
      issues.push({ path: at(k), message: `must be a namespace name, got "${waypointNs}"` });
    }
    if (!hasMeshLabel(labels, USE_WAYPOINT_LABEL)) {
      issues.push({ path: at(k), message: `needs ${USE_WAYPOINT_LABEL} (or ${ISTIO_LABELS[USE_WAYPOINT_LABEL]}) as well` });
    }
  }
  for (const [k, waypointFor] of present(WAYPOINT_FOR_LABEL)) {
    if (!(WAYPOINT_FOR as readonly string[]).includes(waypointFor)) {
      issues.push({ path: at(k), message: `must be one of ${WAYPOINT_FOR.join(', ')}, got "${waypointFor}"` });
    } else if (kind !== 'Gateway') {
      issues.push({ path: at(k), message: 'only applies to a Gateway' });
    }
  }
  return issues;
}
