// Validation of the mesh's own labels and Istio's equivalents on resources; the keys, their
// allowed values and the reading rule are contracts shared with the node proxy and the waypoint
// (common/contracts/labels.ts), re-exported here for the control plane.
import {
  DATAPLANE_MODE_LABEL,
  DATAPLANE_MODES,
  hasMeshLabel,
  ISTIO_LABELS,
  USE_WAYPOINT_LABEL,
  USE_WAYPOINT_NAMESPACE_LABEL,
  WAYPOINT_FOR,
  WAYPOINT_FOR_LABEL,
  type MeshLabelKey,
} from '../../common/contracts/labels';
import { dnsLabel, dnsSubdomain } from './fields';
import type { ValidationIssue } from './validation';

export {
  DATAPLANE_MODE_LABEL,
  DATAPLANE_MODES,
  hasMeshLabel,
  ISTIO_LABELS,
  meshLabel,
  USE_WAYPOINT_LABEL,
  USE_WAYPOINT_NAMESPACE_LABEL,
  WAYPOINT_FOR,
  WAYPOINT_FOR_LABEL,
  type DataplaneMode,
  type MeshLabelKey,
  type WaypointFor,
} from '../../common/contracts/labels';

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
