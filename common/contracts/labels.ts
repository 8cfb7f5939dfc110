// Label and annotation keys the mesh reads on resources (Namespaces, Services, Workloads,
// Gateways), Istio's equivalents (accepted unchanged so that existing ambient configuration
// applies, docs/istio.md), and the values it accepts. Validation lives with the resources
// (control/resources/labels.ts); the keys and values are written only here.

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

/** On a waypoint's Workload: the Gateway it implements (Gateway API's own key). */
export const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';
/** Annotation on a Workload: `healthy`/`unhealthy`/`draining` for its Envoy endpoints. */
export const HEALTH_ANNOTATION = 'nodemesh.io/health';

export const DATAPLANE_MODES = ['ambient', 'none'] as const;
export type DataplaneMode = (typeof DATAPLANE_MODES)[number];
export const WAYPOINT_FOR = ['service', 'workload', 'all', 'none'] as const;
export type WaypointFor = (typeof WAYPOINT_FOR)[number];
