// The Kubernetes-shaped envelope every resource shares: apiVersion, kind, metadata, spec. The
// server sets uid, resourceVersion, generation and creationTimestamp; a client may send
// resourceVersion to make an update conditional (optimistic concurrency).
import { z } from 'zod';
import { annotationMap, dnsLabel, dnsSubdomain, labelMap } from './fields';

export const objectMeta = z.strictObject({
  name: dnsSubdomain,
  namespace: dnsLabel.optional(),
  labels: labelMap.optional(),
  annotations: annotationMap.optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().regex(/^\d+$/, 'must be a resourceVersion returned by the server (decimal digits)').optional(),
  generation: z.number().int().optional(),
  creationTimestamp: z.string().optional(),
  // Accepted so that `kubectl get -o yaml` output can be applied as is; dropped on write.
  generateName: z.unknown().optional(),
  finalizers: z.unknown().optional(),
  ownerReferences: z.unknown().optional(),
  managedFields: z.unknown().optional(),
  selfLink: z.unknown().optional(),
  deletionTimestamp: z.unknown().optional(),
  deletionGracePeriodSeconds: z.unknown().optional(),
});

export interface ObjectMeta {
  name: string;
  /** Set on every namespaced kind; absent on cluster-scoped kinds (Namespace). */
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Server-set: unique id of this incarnation of the resource (changes on delete + re-create). */
  uid?: string;
  /** Server-set: the store revision of the last write of this resource, as decimal digits. */
  resourceVersion?: string;
  /** Server-set: incremented whenever `spec` changes. */
  generation?: number;
  /** Server-set: RFC 3339 time of creation. */
  creationTimestamp?: string;
}

/** Any stored resource. Kind-specific types narrow `kind` and `spec`. */
export interface Resource<K extends string = string, S = unknown> {
  apiVersion: string;
  kind: K;
  metadata: ObjectMeta;
  spec: S;
}

/** How a resource is addressed. `namespace` is undefined for cluster-scoped kinds. */
export interface ResourceKey {
  readonly kind: string;
  readonly namespace?: string;
  readonly name: string;
}

export function keyOf(r: Pick<Resource, 'kind' | 'metadata'>): ResourceKey {
  return { kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name };
}

/** `Service default/web`, `Namespace prod` — the form every message uses. */
export function describeKey(k: ResourceKey): string {
  return k.namespace ? `${k.kind} ${k.namespace}/${k.name}` : `${k.kind} ${k.name}`;
}

/** A map key that is unique per resource. */
export function keyString(k: ResourceKey): string {
  return `${k.kind}/${k.namespace ?? ''}/${k.name}`;
}

export const DEFAULT_NAMESPACE = 'default';
