// The mesh's own labels (DESIGN.md "Control plane") and their allowed values.
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

export const DATAPLANE_MODES = ['ambient', 'none'] as const;
export type DataplaneMode = (typeof DATAPLANE_MODES)[number];
export const WAYPOINT_FOR = ['service', 'workload', 'all', 'none'] as const;
export type WaypointFor = (typeof WAYPOINT_FOR)[number];

/** Checks the mesh labels on a resource of `kind`; returns issues with `metadata.labels[...]` paths. */
export function meshLabelIssues(kind: string, labels: Record<string, string> | undefined): ValidationIssue[] {
  if (!labels) return [];
  const issues: ValidationIssue[] = [];
  const at = (key: string) => `metadata.labels[${JSON.stringify(key)}]`;
  const mode = labels[DATAPLANE_MODE_LABEL];
  if (mode !== undefined) {
    if (!(DATAPLANE_MODES as readonly string[]).includes(mode)) {
      issues.push({ path: at(DATAPLANE_MODE_LABEL), message: `must be one of ${DATAPLANE_MODES.join(', ')}, got "${mode}"` });
    } else if (kind !== 'Namespace' && kind !== 'Workload') {
      issues.push({ path: at(DATAPLANE_MODE_LABEL), message: 'only applies to a Namespace or a Workload' });
    }
  }
  const waypoint = labels[USE_WAYPOINT_LABEL];
  if (waypoint !== undefined) {
    if (waypoint !== 'none' && !dnsSubdomain.safeParse(waypoint).success) {
      issues.push({ path: at(USE_WAYPOINT_LABEL), message: `must be the name of a Gateway or "none", got "${waypoint}"` });
    } else if (kind !== 'Namespace' && kind !== 'Service' && kind !== 'Workload') {
      issues.push({ path: at(USE_WAYPOINT_LABEL), message: 'only applies to a Namespace, Service or Workload' });
    }
  }
  const waypointNs = labels[USE_WAYPOINT_NAMESPACE_LABEL];
  if (waypointNs !== undefined && !dnsLabel.safeParse(waypointNs).success) {
    issues.push({ path: at(USE_WAYPOINT_NAMESPACE_LABEL), message: `must be a namespace name, got "${waypointNs}"` });
  }
  if (waypointNs !== undefined && waypoint === undefined) {
    issues.push({ path: at(USE_WAYPOINT_NAMESPACE_LABEL), message: `needs ${USE_WAYPOINT_LABEL} as well` });
  }
  const waypointFor = labels[WAYPOINT_FOR_LABEL];
  if (waypointFor !== undefined) {
    if (!(WAYPOINT_FOR as readonly string[]).includes(waypointFor)) {
      issues.push({ path: at(WAYPOINT_FOR_LABEL), message: `must be one of ${WAYPOINT_FOR.join(', ')}, got "${waypointFor}"` });
    } else if (kind !== 'Gateway') {
      issues.push({ path: at(WAYPOINT_FOR_LABEL), message: 'only applies to a Gateway' });
    }
  }
  return issues;
}
