// Operating waypoints (pure): the Gateway `waypoint apply` writes, the namespace label change of
// --enroll-namespace / delete, and the rows `waypoint list` prints from Gateways and the Workloads
// that run them (label gateway.networking.k8s.io/gateway-name).
import { isWaypointClass, WAYPOINT_GATEWAY_CLASS } from '../../control/resources/gateway';
import { GATEWAY_NAME_LABEL, meshLabel, USE_WAYPOINT_LABEL, WAYPOINT_FOR_LABEL } from '../../common/contracts/labels';
import { HBONE_PORT } from '../../common/contracts/ports';

export const DEFAULT_WAYPOINT_NAME = 'waypoint';
export const WAYPOINT_FOR_VALUES = ['service', 'workload', 'all'] as const;
export type WaypointFor = (typeof WAYPOINT_FOR_VALUES)[number];

export function checkWaypointFor(v: string | undefined): WaypointFor {
  if (v === undefined) return 'service';
  if (!(WAYPOINT_FOR_VALUES as readonly string[]).includes(v)) throw new RangeError(`--for must be one of ${WAYPOINT_FOR_VALUES.join(', ')}, got '${v}'`);
  return v as WaypointFor;
}

/** The waypoint Gateway: class nodemesh-waypoint, one HBONE listener on 15008, labelled with what it serves. */
export function waypointGateway(name: string, namespace: string, forWhat: WaypointFor): Record<string, unknown> {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name, namespace, labels: { [WAYPOINT_FOR_LABEL]: forWhat } },
    spec: { gatewayClassName: WAYPOINT_GATEWAY_CLASS, listeners: [{ name: 'mesh', port: HBONE_PORT, protocol: 'HBONE' }] },
  };
}

/**
 * A namespace's labels after enrolling it with waypoint `name` (`use` true) or after that waypoint
 * is deleted (`use` false: the label goes only when it names this waypoint). undefined: no change.
 */
export function namespaceLabelsFor(labels: Record<string, string> | undefined, name: string, use: boolean): Record<string, string> | undefined {
  const now = labels ?? {};
  if (use) return now[USE_WAYPOINT_LABEL] === name ? undefined : { ...now, [USE_WAYPOINT_LABEL]: name };
  if (now[USE_WAYPOINT_LABEL] !== name) return undefined;
  const next = { ...now };
  delete next[USE_WAYPOINT_LABEL];
  return next;
}

interface Meta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
}
export interface GatewayLike {
  metadata: Meta;
  spec: { gatewayClassName?: string; listeners?: Array<{ port: number; protocol: string }> };
}
export interface WorkloadLike {
  metadata: Meta;
  spec: { node?: string; addresses?: string[]; netnsPath?: string };
}

export interface WaypointRow {
  namespace: string;
  name: string;
  for: string;
  /** Node(s) the waypoint's Workload(s) run on; '-' when none does. */
  node: string;
  address: string;
  /** Filled in by the caller after probing readiness. */
  ready: string;
  /** The netns of its Workload (lab), to probe readiness from. */
  netnsPath?: string;
  /** Namespaces enrolled with it (label use-waypoint=<name>). */
  enrolled: boolean;
}

/** One row per waypoint Gateway, with where its Workload runs. */
export function waypointRows(
  gateways: readonly GatewayLike[],
  workloads: readonly WorkloadLike[],
  namespaces: ReadonlyArray<{ metadata: Meta }> = [],
): WaypointRow[] {
  return gateways
    .filter((g) => isWaypointClass(g.spec.gatewayClassName))
    .map((g) => {
      const ns = g.metadata.namespace ?? 'default';
      const runs = workloads.filter((w) => (w.metadata.namespace ?? 'default') === ns && w.metadata.labels?.[GATEWAY_NAME_LABEL] === g.metadata.name);
      return {
        namespace: ns,
        name: g.metadata.name,
        for: meshLabel(g.metadata.labels, WAYPOINT_FOR_LABEL) ?? 'service',
        node: runs.map((w) => w.spec.node ?? '?').join(',') || '-',
        address: runs.flatMap((w) => w.spec.addresses ?? []).join(',') || '-',
        ready: runs.length ? 'unknown' : 'not deployed (no Workload runs it)',
        netnsPath: runs[0]?.spec.netnsPath,
        enrolled: namespaces.some((n) => n.metadata.name === ns && meshLabel(n.metadata.labels, USE_WAYPOINT_LABEL) === g.metadata.name),
      };
    })
    .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
}
