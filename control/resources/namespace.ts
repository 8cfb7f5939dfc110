// v1 Namespace: a scope for names, and where `nodemesh.io/dataplane-mode` enrols a whole namespace.
import { z } from 'zod';
import type { Resource } from './meta';

export const namespaceSpec = z.strictObject({
  finalizers: z.array(z.string()).optional(),
});
export type NamespaceSpec = z.output<typeof namespaceSpec>;
export type Namespace = Resource<'Namespace', NamespaceSpec>;
