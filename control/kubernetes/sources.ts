// What the Kubernetes config source watches: one informer per kind, cluster-wide. Kinds from CRDs a
// cluster may lack (Gateway API, Istio's security.istio.io) are optional: see KubernetesStore.
import { translateNamespace, translatePod, translateSameKind, translateService, type KubeObject, type Translated } from './translate';

export interface WatchedKind {
  /** Short name for logs, metrics and status: `pods`, `gateways`, … */
  readonly name: string;
  readonly apiVersion: string;
  readonly kind: string;
  /** The cluster-wide list/watch path. */
  readonly path: string;
  /** Per-object translation; EndpointSlices are translated by the store (they need the pods). */
  readonly translate?: (obj: KubeObject) => Translated;
  /**
   * The kind comes from a CRD the cluster may not have: a 404 on its list does not hold up the
   * sync; it is logged once with `install` (what to do) and retried with backoff, so installing
   * the CRD later starts the watch.
   */
  readonly optional?: { readonly install: string };
  /**
   * Another watched kind (its `name`) whose object of the same namespace and name wins: this
   * kind's object is then not mirrored (Istio's policy named like one of nodemesh's own).
   */
  readonly yieldsTo?: string;
}

const GATEWAY_API = {
  install:
    'install the Gateway API CRDs (standard channel, e.g. kubectl apply --server-side -f https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.2.1/standard-install.yaml); without them there are no waypoints or HTTPRoutes',
};
const ISTIO_SECURITY = {
  install:
    "only needed for Istio's own policies (security.istio.io/v1, Istio 1.22+): install Istio's base CRDs to have them read; nodemesh's security.nodemesh.io kinds work without",
};

export const WATCHED_KINDS: readonly WatchedKind[] = [
  { name: 'namespaces', apiVersion: 'v1', kind: 'Namespace', path: '/api/v1/namespaces', translate: translateNamespace },
  { name: 'pods', apiVersion: 'v1', kind: 'Pod', path: '/api/v1/pods', translate: translatePod },
  { name: 'services', apiVersion: 'v1', kind: 'Service', path: '/api/v1/services', translate: translateService },
  { name: 'endpointslices', apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', path: '/apis/discovery.k8s.io/v1/endpointslices' },
  {
    name: 'gateways',
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    path: '/apis/gateway.networking.k8s.io/v1/gateways',
    translate: translateSameKind,
    optional: GATEWAY_API,
  },
  {
    name: 'httproutes',
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    path: '/apis/gateway.networking.k8s.io/v1/httproutes',
    translate: translateSameKind,
    optional: GATEWAY_API,
  },
  {
    name: 'authorizationpolicies',
    apiVersion: 'security.nodemesh.io/v1alpha1',
    kind: 'AuthorizationPolicy',
    path: '/apis/security.nodemesh.io/v1alpha1/authorizationpolicies',
    translate: translateSameKind,
  },
  {
    name: 'peerauthentications',
    apiVersion: 'security.nodemesh.io/v1alpha1',
    kind: 'PeerAuthentication',
    path: '/apis/security.nodemesh.io/v1alpha1/peerauthentications',
    translate: translateSameKind,
  },
  {
    name: 'istio-authorizationpolicies',
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    path: '/apis/security.istio.io/v1/authorizationpolicies',
    translate: translateSameKind,
    optional: ISTIO_SECURITY,
    yieldsTo: 'authorizationpolicies',
  },
  {
    name: 'istio-peerauthentications',
    apiVersion: 'security.istio.io/v1',
    kind: 'PeerAuthentication',
    path: '/apis/security.istio.io/v1/peerauthentications',
    translate: translateSameKind,
    optional: ISTIO_SECURITY,
    yieldsTo: 'peerauthentications',
  },
  { name: 'workloads', apiVersion: 'nodemesh.io/v1alpha1', kind: 'Workload', path: '/apis/nodemesh.io/v1alpha1/workloads', translate: translateSameKind },
];
