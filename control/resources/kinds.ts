// Every kind the control plane knows: its apiVersion, whether it is namespaced, the plural used in
// API paths and CLI arguments, short names, and the schema of its spec.
import type { z } from 'zod';
import { authorizationPolicySpec, type AuthorizationPolicy } from './authorization-policy';
import { gatewaySpec, type Gateway } from './gateway';
import { httpRouteSpec, type HTTPRoute } from './http-route';
import { namespaceSpec, type Namespace } from './namespace';
import { peerAuthenticationSpec, type PeerAuthentication } from './peer-authentication';
import { serviceSpec, type Service } from './service';
import { workloadSpec, type Workload } from './workload';

export interface KindInfo {
  readonly kind: string;
  readonly apiVersion: string;
  /** Other apiVersions accepted for the same kind, unchanged (Istio's, for its security API). */
  readonly compatApiVersions?: readonly string[];
  readonly namespaced: boolean;
  /** Lower-case plural: the API path segment and the CLI's canonical name. */
  readonly plural: string;
  readonly singular: string;
  readonly shortNames: readonly string[];
  readonly spec: z.ZodType;
  /** `spec` may be omitted (Namespace). */
  readonly specOptional: boolean;
}

/** Istio's security API versions: their AuthorizationPolicy and PeerAuthentication are ours, field for field. */
export const ISTIO_SECURITY_API_VERSIONS = ['security.istio.io/v1', 'security.istio.io/v1beta1'] as const;

export const KINDS: readonly KindInfo[] = [
  {
    kind: 'Namespace',
    apiVersion: 'v1',
    namespaced: false,
    plural: 'namespaces',
    singular: 'namespace',
    shortNames: ['ns'],
    spec: namespaceSpec,
    specOptional: true,
  },
  { kind: 'Service', apiVersion: 'v1', namespaced: true, plural: 'services', singular: 'service', shortNames: ['svc'], spec: serviceSpec, specOptional: false },
  {
    kind: 'Workload',
    apiVersion: 'nodemesh.io/v1alpha1',
    namespaced: true,
    plural: 'workloads',
    singular: 'workload',
    shortNames: ['wl'],
    spec: workloadSpec,
    specOptional: false,
  },
  {
    kind: 'AuthorizationPolicy',
    apiVersion: 'security.nodemesh.io/v1alpha1',
    compatApiVersions: ISTIO_SECURITY_API_VERSIONS,
    namespaced: true,
    plural: 'authorizationpolicies',
    singular: 'authorizationpolicy',
    shortNames: ['ap'],
    spec: authorizationPolicySpec,
    specOptional: true,
  },
  {
    kind: 'PeerAuthentication',
    apiVersion: 'security.nodemesh.io/v1alpha1',
    compatApiVersions: ISTIO_SECURITY_API_VERSIONS,
    namespaced: true,
    plural: 'peerauthentications',
    singular: 'peerauthentication',
    shortNames: ['pa'],
    spec: peerAuthenticationSpec,
    specOptional: true,
  },
  {
    kind: 'Gateway',
    apiVersion: 'gateway.networking.k8s.io/v1',
    namespaced: true,
    plural: 'gateways',
    singular: 'gateway',
    shortNames: ['gtw'],
    spec: gatewaySpec,
    specOptional: false,
  },
  {
    kind: 'HTTPRoute',
    apiVersion: 'gateway.networking.k8s.io/v1',
    namespaced: true,
    plural: 'httproutes',
    singular: 'httproute',
    shortNames: [],
    spec: httpRouteSpec,
    specOptional: false,
  },
];

/** Maps each kind name to its TypeScript type. */
export interface KindMap {
  Namespace: Namespace;
  Service: Service;
  Workload: Workload;
  AuthorizationPolicy: AuthorizationPolicy;
  PeerAuthentication: PeerAuthentication;
  Gateway: Gateway;
  HTTPRoute: HTTPRoute;
}
export type KindName = keyof KindMap;
export type AnyResource = KindMap[KindName];

const byKind = new Map(KINDS.map((k) => [k.kind, k]));
const byAlias = new Map<string, KindInfo>();
for (const k of KINDS) {
  for (const alias of [k.kind.toLowerCase(), k.plural, k.singular, ...k.shortNames]) byAlias.set(alias, k);
}

export function kindInfo(kind: string): KindInfo | undefined {
  return byKind.get(kind);
}

/** Resolves what a user typed (`svc`, `services`, `Service`, `httproute`) to a kind. */
export function resolveKind(alias: string): KindInfo | undefined {
  return byKind.get(alias) ?? byAlias.get(alias.toLowerCase());
}

export function kindNames(): string {
  return KINDS.map((k) => k.plural).join(', ');
}
