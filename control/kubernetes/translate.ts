// From Kubernetes objects to the mesh's resources (control/resources), one object at a time. Pure:
// the Kubernetes config source feeds it what its informers see and mirrors the result into a
// store, so the same translation to the workload API and to Envoy runs as on the file store.
//
// - Namespace -> Namespace (labels: nodemesh.io/dataplane-mode, use-waypoint).
// - Pod -> Workload of the same name: node = spec.nodeName, addresses = status.podIPs,
//   serviceAccount, labels, container ports. Every pod that is bound to a node, is not on the host
//   network and has not finished (Succeeded/Failed) — also before it has an IP: kubelet sets the
//   pod IP only after the CNI ADD returns, and the nodemesh CNI plugin's ADD waits for the pod's
//   Workload, so a Pod is published as soon as it is scheduled, with no addresses (validated with
//   podWorkloadSpec, which allows that for Pods only), and updated once status.podIPs is set. The
//   pod UID travels in the nodemesh.io/pod-uid annotation, which the workload API turns into
//   Workload.pod_uid (workload_type "Pod"); the node proxy matches the CNI ADD to it. What a
//   Workload has no field for travels in annotations too: nodemesh.io/qos-class,
//   nodemesh.io/ready ("true"/"false"). metadata.uid is the pod's UID.
// - Service -> Service (ClusterIP, NodePort and LoadBalancer Services as their ClusterIP part;
//   ExternalName Services are skipped).
// - EndpointSlice -> one Workload per ready endpoint that is not a mesh pod (no Pod targetRef, or
//   a pod that is not mirrored, e.g. on the host network): `<slice>-ep<i>`, node = the endpoint's
//   nodeName, labelled `kubernetes.io/service-name: <service>` plus the Service's selector (so the
//   Service selects it) and `nodemesh.io/dataplane-mode: none` (plain TCP: it is outside the
//   mesh). A Service without a selector is mirrored with the selector
//   `kubernetes.io/service-name: <its name>`, so its EndpointSlices' endpoints are its endpoints.
// - Gateway, HTTPRoute, AuthorizationPolicy, PeerAuthentication, Workload -> the same kind (spec
//   only; status is the control plane's to write).
// Every result is validated like a config API write; an object that does not fit is skipped with
// a problem naming the object and the field (reported once by the source, not fatal).
import type { AnyResource } from '../resources/kinds';
import { DATAPLANE_MODE_LABEL } from '../resources/labels';
import { POD_UID_ANNOTATION, podWorkloadSpec } from '../resources/workload';
import { validateResource } from '../resources/validate';
import { ValidationError } from '../resources/validation';

export { POD_UID_ANNOTATION };
export const QOS_CLASS_ANNOTATION = 'nodemesh.io/qos-class';
export const READY_ANNOTATION = 'nodemesh.io/ready';
/** On Workloads made from EndpointSlice endpoints: the Service the slice belongs to. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/** The parts of a Kubernetes object the translation reads (JSON as the API server sends it). */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    creationTimestamp?: string | Date;
  };
  spec?: unknown;
  status?: unknown;
  [k: string]: unknown;
}

export interface Translated {
  readonly resources: readonly AnyResource[];
  /** Why (part of) the object was not mirrored; undefined when all of it was. */
  readonly problem?: string;
}

interface PodSpec {
  nodeName?: string;
  serviceAccountName?: string;
  serviceAccount?: string;
  hostNetwork?: boolean;
  containers?: { ports?: { name?: string; containerPort?: number; protocol?: string }[] }[];
}
interface PodStatus {
  phase?: string;
  podIP?: string;
  podIPs?: { ip?: string }[];
  qosClass?: string;
  conditions?: { type?: string; status?: string }[];
}
interface ServiceSpec {
  type?: string;
  clusterIP?: string;
  selector?: Record<string, string>;
  ports?: { name?: string; port?: number; targetPort?: number | string; protocol?: string; appProtocol?: string }[];
}
interface EndpointSlice extends KubeObject {
  addressType?: string;
  endpoints?: { addresses?: string[]; conditions?: { ready?: boolean }; nodeName?: string; targetRef?: { kind?: string; name?: string; namespace?: string } }[];
  ports?: { name?: string; port?: number; protocol?: string }[];
}

const skip = (problem: string): Translated => ({ resources: [], problem });

function meta(obj: KubeObject, extraAnnotations: Record<string, string> = {}) {
  const m = obj.metadata ?? {};
  const annotations = { ...(m.annotations ?? {}), ...extraAnnotations };
  delete annotations[LAST_APPLIED];
  return {
    name: m.name ?? '',
    ...(m.namespace !== undefined ? { namespace: m.namespace } : {}),
    ...(m.labels && Object.keys(m.labels).length ? { labels: { ...m.labels } } : {}),
    ...(Object.keys(annotations).length ? { annotations } : {}),
  };
}

function describe(obj: KubeObject): string {
  const m = obj.metadata ?? {};
  return `${obj.kind ?? 'object'} ${m.namespace ? `${m.namespace}/` : ''}${m.name ?? '?'}`;
}

/** Validates `doc` as a config API write would; the stored uid is the Kubernetes object's. */
function checked(obj: KubeObject, doc: Record<string, unknown>, spec?: typeof podWorkloadSpec): Translated {
  try {
    const r = validateResource(doc, { label: describe(obj), ...(spec ? { spec } : {}) });
    if (obj.metadata?.uid) r.metadata.uid = obj.metadata.uid;
    if (obj.metadata?.creationTimestamp) r.metadata.creationTimestamp = new Date(obj.metadata.creationTimestamp).toISOString();
    return { resources: [r] };
  } catch (err) {
    if (err instanceof ValidationError) return skip(`${describe(obj)} is not mirrored: ${err.message}`);
    throw err;
  }
}

export function translateNamespace(obj: KubeObject): Translated {
  return checked(obj, { apiVersion: 'v1', kind: 'Namespace', metadata: meta(obj), spec: {} });
}

export function podReady(status: PodStatus | undefined): boolean {
  return status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

export function translatePod(obj: KubeObject): Translated {
  const spec = (obj.spec ?? {}) as PodSpec;
  const status = (obj.status ?? {}) as PodStatus;
  const who = describe(obj);
  if (!spec.nodeName) return skip(`${who} is not mirrored yet: not scheduled to a node`);
  if (spec.hostNetwork)
    return skip(`${who} is not mirrored: it uses the host network (the mesh cannot capture it; its Service endpoints come from EndpointSlices)`);
  if (status.phase === 'Succeeded' || status.phase === 'Failed') return skip(`${who} is not mirrored: it has finished (${status.phase})`);
  const addresses = [...new Set([...(status.podIPs ?? []).map((p) => p.ip), status.podIP].filter((ip): ip is string => !!ip))];
  const ports = (spec.containers ?? []).flatMap((c) => c.ports ?? []).filter((p) => p.containerPort !== undefined);
  const seen = new Set<string>();
  const annotations: Record<string, string> = { [READY_ANNOTATION]: String(podReady(status)) };
  if (obj.metadata?.uid) annotations[POD_UID_ANNOTATION] = obj.metadata.uid;
  if (status.qosClass) annotations[QOS_CLASS_ANNOTATION] = status.qosClass;
  return checked(
    obj,
    {
      apiVersion: 'nodemesh.io/v1alpha1',
      kind: 'Workload',
      metadata: meta(obj, annotations),
      spec: {
        serviceAccount: spec.serviceAccountName || spec.serviceAccount || 'default',
        node: spec.nodeName,
        addresses,
        ...(ports.length
          ? {
              ports: ports
                .filter((p) => {
                  const k = `${p.containerPort}/${p.protocol ?? 'TCP'}`;
                  if (seen.has(k)) return false;
                  seen.add(k);
                  return true;
                })
                .map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.containerPort, protocol: p.protocol ?? 'TCP' })),
            }
          : {}),
      },
    },
    podWorkloadSpec,
  );
}

export function translateService(obj: KubeObject): Translated {
  const spec = (obj.spec ?? {}) as ServiceSpec;
  if (spec.type === 'ExternalName') return skip(`${describe(obj)} is not mirrored: ExternalName Services have no address in the mesh`);
  return checked(obj, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(obj),
    spec: {
      ...(spec.clusterIP ? { clusterIP: spec.clusterIP } : {}),
      ports: (spec.ports ?? []).map((p) => ({
        ...(p.name ? { name: p.name } : {}),
        port: p.port,
        ...(p.targetPort !== undefined ? { targetPort: p.targetPort } : {}),
        protocol: p.protocol ?? 'TCP',
        ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}),
      })),
      selector: spec.selector && Object.keys(spec.selector).length ? { ...spec.selector } : { [SERVICE_NAME_LABEL]: obj.metadata?.name ?? '' },
    },
  });
}

/**
 * Endpoints that are not mesh pods: `isMeshPod(ns, name)` says whether a Pod targetRef is already
 * mirrored as a Workload (then it is not repeated here); `selectorOf` gives a Service's selector.
 */
export function translateEndpointSlice(
  obj: EndpointSlice,
  isMeshPod: (namespace: string, name: string) => boolean,
  selectorOf: (namespace: string, service: string) => Record<string, string> | undefined,
): Translated {
  const ns = obj.metadata?.namespace ?? '';
  const service = obj.metadata?.labels?.[SERVICE_NAME_LABEL];
  if (!service) return { resources: [] };
  if (obj.addressType !== 'IPv4' && obj.addressType !== 'IPv6') return { resources: [] };
  const resources: AnyResource[] = [];
  const problems: string[] = [];
  (obj.endpoints ?? []).forEach((ep, i) => {
    const ref = ep.targetRef;
    if (ref?.kind === 'Pod' && ref.name && isMeshPod(ref.namespace ?? ns, ref.name)) return;
    if (ep.conditions?.ready === false || !ep.addresses?.length) return;
    const t = checked(obj, {
      apiVersion: 'nodemesh.io/v1alpha1',
      kind: 'Workload',
      metadata: {
        name: `${obj.metadata?.name ?? service}-ep${i}`,
        namespace: ns,
        labels: { ...(selectorOf(ns, service) ?? {}), [SERVICE_NAME_LABEL]: service, [DATAPLANE_MODE_LABEL]: 'none' },
      },
      spec: {
        node: ep.nodeName ?? 'external',
        addresses: ep.addresses,
        ports: (obj.ports ?? [])
          .filter((p) => p.port !== undefined)
          .map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, protocol: p.protocol ?? 'TCP' })),
      },
    });
    resources.push(...t.resources.map((r) => ({ ...r, metadata: { ...r.metadata, uid: `${obj.metadata?.uid ?? ''}/${i}` } }) as AnyResource));
    if (t.problem) problems.push(t.problem);
  });
  return problems.length ? { resources, problem: problems.join('; ') } : { resources };
}

/** Gateway API objects and nodemesh's own custom resources: the same kind, spec as is. */
export function translateSameKind(obj: KubeObject): Translated {
  return checked(obj, { apiVersion: obj.apiVersion, kind: obj.kind, metadata: meta(obj), ...(obj.spec !== undefined ? { spec: obj.spec } : {}) });
}
