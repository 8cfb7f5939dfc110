// The stand-in API server's table of resource types: what it serves, under which group/version,
// whether namespaced, and whether `status` is a subresource. Only the kinds nodemesh needs. Which
// API groups are served (their CRDs "installed") is the server's choice (StandInApiServerOptions).

export interface ResourceType {
  readonly group: string; // '' for core
  readonly version: string;
  readonly plural: string;
  readonly singular: string;
  readonly kind: string;
  readonly namespaced: boolean;
  readonly shortNames?: readonly string[];
  /** `status` is a subresource: main-resource writes keep the stored status. */
  readonly status?: boolean;
  /** Only `create` (TokenReview): nothing is stored. */
  readonly createOnly?: boolean;
}

export const RESOURCE_TYPES: readonly ResourceType[] = [
  { group: '', version: 'v1', plural: 'namespaces', singular: 'namespace', kind: 'Namespace', namespaced: false, shortNames: ['ns'], status: true },
  { group: '', version: 'v1', plural: 'pods', singular: 'pod', kind: 'Pod', namespaced: true, shortNames: ['po'], status: true },
  { group: '', version: 'v1', plural: 'services', singular: 'service', kind: 'Service', namespaced: true, shortNames: ['svc'], status: true },
  { group: '', version: 'v1', plural: 'serviceaccounts', singular: 'serviceaccount', kind: 'ServiceAccount', namespaced: true, shortNames: ['sa'] },
  { group: '', version: 'v1', plural: 'secrets', singular: 'secret', kind: 'Secret', namespaced: true },
  { group: '', version: 'v1', plural: 'configmaps', singular: 'configmap', kind: 'ConfigMap', namespaced: true, shortNames: ['cm'] },
  { group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', singular: 'endpointslice', kind: 'EndpointSlice', namespaced: true },
  { group: 'apps', version: 'v1', plural: 'deployments', singular: 'deployment', kind: 'Deployment', namespaced: true, shortNames: ['deploy'], status: true },
  {
    group: 'gateway.networking.k8s.io',
    version: 'v1',
    plural: 'gateways',
    singular: 'gateway',
    kind: 'Gateway',
    namespaced: true,
    shortNames: ['gtw'],
    status: true,
  },
  { group: 'gateway.networking.k8s.io', version: 'v1', plural: 'httproutes', singular: 'httproute', kind: 'HTTPRoute', namespaced: true, status: true },
  {
    group: 'security.nodemesh.io',
    version: 'v1alpha1',
    plural: 'authorizationpolicies',
    singular: 'authorizationpolicy',
    kind: 'AuthorizationPolicy',
    namespaced: true,
    shortNames: ['ap'],
  },
  {
    group: 'security.nodemesh.io',
    version: 'v1alpha1',
    plural: 'peerauthentications',
    singular: 'peerauthentication',
    kind: 'PeerAuthentication',
    namespaced: true,
    shortNames: ['pa'],
  },
  // Istio's security API (CRDs a cluster has only with Istio installed): nodemesh reads them too.
  {
    group: 'security.istio.io',
    version: 'v1',
    plural: 'authorizationpolicies',
    singular: 'authorizationpolicy',
    kind: 'AuthorizationPolicy',
    namespaced: true,
  },
  { group: 'security.istio.io', version: 'v1', plural: 'peerauthentications', singular: 'peerauthentication', kind: 'PeerAuthentication', namespaced: true },
  { group: 'nodemesh.io', version: 'v1alpha1', plural: 'workloads', singular: 'workload', kind: 'Workload', namespaced: true, shortNames: ['wl'] },
  { group: 'authentication.k8s.io', version: 'v1', plural: 'tokenreviews', singular: 'tokenreview', kind: 'TokenReview', namespaced: false, createOnly: true },
];

export function apiVersionOf(t: ResourceType): string {
  return t.group ? `${t.group}/${t.version}` : t.version;
}

export function typeKey(t: ResourceType): string {
  return `${t.group}/${t.plural}`;
}

export function findType(group: string, version: string, plural: string): ResourceType | undefined {
  return RESOURCE_TYPES.find((t) => t.group === group && t.version === version && t.plural === plural);
}

export function typeOfKind(apiVersion: string, kind: string): ResourceType | undefined {
  return RESOURCE_TYPES.find((t) => apiVersionOf(t) === apiVersion && t.kind === kind);
}

/** A Kubernetes object as the stand-in stores it (JSON). */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name?: string;
    generateName?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    creationTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean; blockOwnerDeletion?: boolean }[];
    [k: string]: unknown;
  };
  spec?: unknown;
  status?: unknown;
  [k: string]: unknown;
}
