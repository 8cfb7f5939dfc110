// Schema validation of one resource: envelope, metadata, spec of its kind, mesh labels. Returns the
// normalized resource (defaults filled in, kubectl-only metadata dropped) or throws a
// ValidationError naming the resource, the field path and the reason.
import { z } from 'zod';
import { kindInfo, KINDS, type AnyResource } from './kinds';
import { meshLabelIssues } from './labels';
import { DEFAULT_NAMESPACE, describeKey, objectMeta, type ObjectMeta } from './meta';
import { issuesFromZod, ValidationError, type ValidationIssue } from './validation';

const envelope = z.strictObject({
  apiVersion: z.string({ message: 'required: e.g. v1 or nodemesh.io/v1alpha1' }),
  kind: z.string({ message: 'required: e.g. Service' }),
  metadata: z.record(z.string(), z.unknown(), { message: 'required: an object with at least a name' }),
  spec: z.unknown().optional(),
  // Accepted so that `get -o yaml` output can be re-applied; never stored.
  status: z.unknown().optional(),
});

export interface ValidateOptions {
  /** Namespace for namespaced resources that name none (the CLI's -n, else `default`). */
  defaultNamespace?: string;
  /** How to name the input in errors before its kind and name are known, e.g. `document 2`. */
  label?: string;
  /** Validates the spec with this schema instead of its kind's (the Kubernetes source's Pods: podWorkloadSpec). */
  spec?: z.ZodType;
}

/** Validates `input` (parsed YAML/JSON) and returns the normalized resource. */
export function validateResource(input: unknown, opts: ValidateOptions = {}): AnyResource {
  const label = opts.label ?? 'resource';
  const env = envelope.safeParse(input);
  if (!env.success) throw new ValidationError(label, issuesFromZod(env.error));
  const { apiVersion, kind, metadata, spec } = env.data;
  const info = kindInfo(kind);
  if (!info) {
    throw new ValidationError(label, [{ path: 'kind', message: `unknown kind "${kind}"; known kinds: ${KINDS.map((k) => k.kind).join(', ')}` }]);
  }
  const rawName = typeof metadata.name === 'string' ? metadata.name : '<no name>';
  let namespace = typeof metadata.namespace === 'string' ? metadata.namespace : undefined;
  if (info.namespaced && namespace === undefined) namespace = opts.defaultNamespace ?? DEFAULT_NAMESPACE;
  const who = describeKey({ kind, namespace: info.namespaced ? namespace : undefined, name: rawName });

  const issues: ValidationIssue[] = [];
  if (apiVersion !== info.apiVersion && !info.compatApiVersions?.includes(apiVersion)) {
    const allowed = [info.apiVersion, ...(info.compatApiVersions ?? [])].map((v) => `"${v}"`).join(' or ');
    issues.push({ path: 'apiVersion', message: `must be ${allowed} for kind ${kind}, got "${apiVersion}"` });
  }
  const meta = objectMeta.safeParse({ ...metadata, namespace: info.namespaced ? namespace : metadata.namespace });
  if (!meta.success) issues.push(...issuesFromZod(meta.error, ['metadata']));
  if (!info.namespaced && metadata.namespace !== undefined) {
    issues.push({ path: 'metadata.namespace', message: `must not be set: ${kind} is cluster-scoped` });
  }
  let parsedSpec: unknown = {};
  if (spec === undefined && !info.specOptional) {
    issues.push({ path: 'spec', message: `required for kind ${kind}` });
  } else {
    const s = (opts.spec ?? info.spec).safeParse(spec ?? {});
    if (!s.success) issues.push(...issuesFromZod(s.error, ['spec']));
    else parsedSpec = s.data;
  }
  if (meta.success) issues.push(...meshLabelIssues(kind, meta.data.labels));
  if (issues.length > 0 || !meta.success) throw new ValidationError(who, issues);

  const m = meta.data;
  const outMeta: ObjectMeta = { name: m.name };
  if (info.namespaced) outMeta.namespace = m.namespace;
  if (m.labels && Object.keys(m.labels).length > 0) outMeta.labels = m.labels;
  if (m.annotations && Object.keys(m.annotations).length > 0) outMeta.annotations = m.annotations;
  if (m.uid !== undefined) outMeta.uid = m.uid;
  if (m.resourceVersion !== undefined) outMeta.resourceVersion = m.resourceVersion;
  if (m.generation !== undefined) outMeta.generation = m.generation;
  if (m.creationTimestamp !== undefined) outMeta.creationTimestamp = m.creationTimestamp;
  return { apiVersion, kind, metadata: outMeta, spec: parsedSpec } as AnyResource;
}
