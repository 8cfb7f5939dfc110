// What the Kubernetes config source watches: one informer per kind, cluster-wide.
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
}

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
  },
  {
    name: 'httproutes',
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    path: '/apis/gateway.networking.k8s.io/v1/httproutes',
    translate: translateSameKind,
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
  { name: 'workloads', apiVersion: 'nodemesh.io/v1alpha1', kind: 'Workload', path: '/apis/nodemesh.io/v1alpha1/workloads', translate: translateSameKind },
];
