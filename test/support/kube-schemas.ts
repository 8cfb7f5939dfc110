// Validation of Kubernetes objects against the Kubernetes OpenAPI schemas, through the
// kubernetes-models validators (core, apps, rbac, policy, apiextensions…) and
// @kubernetes-models/gateway-api; and of custom resources against a CRD's openAPIV3Schema with
// ajv, as the API server applies it with strict field validation (kubectl's default since 1.27):
// an unknown field is an error, not silently pruned.
import Ajv, { type ErrorObject } from 'ajv';

type ModelClass = new (data: unknown) => { validate(): void };
type Namespace = Record<string, Record<string, unknown>>;

let models: { core: Record<string, unknown>; gateway: Record<string, unknown> } | undefined;

async function load(): Promise<{ core: Record<string, unknown>; gateway: Record<string, unknown> }> {
  models ??= {
    core: (await import('kubernetes-models')) as unknown as Record<string, unknown>,
    gateway: (await import('@kubernetes-models/gateway-api')) as unknown as Record<string, unknown>,
  };
  return models;
}

/** `rbac.authorization.k8s.io` → `rbacAuthorizationK8sIo`, as kubernetes-models names its modules. */
function moduleName(group: string): string {
  return group.replace(/[.-]([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Throws naming the object and the failing field when `obj` does not match its schema. */
export async function validateKubernetesObject(obj: { apiVersion: string; kind: string; metadata?: { name?: string } }): Promise<void> {
  const { core, gateway } = await load();
  const [group, version] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/') : ['', obj.apiVersion];
  const root = group.endsWith('gateway.networking.k8s.io') ? gateway : core;
  const groupModule = (group === '' ? root : (root[moduleName(group)] as Namespace | undefined)) as Namespace | undefined;
  const Model = groupModule?.[version]?.[obj.kind] as ModelClass | undefined;
  if (!Model) throw new Error(`no schema for ${obj.apiVersion} ${obj.kind} in kubernetes-models`);
  try {
    new Model(obj).validate();
  } catch (err) {
    throw new Error(`${obj.kind} ${obj.metadata?.name ?? '?'} does not match the Kubernetes schema: ${(err as Error).message}`);
  }
}

type Schema = { [k: string]: unknown };

/** Adds `additionalProperties: false` wherever properties are listed (strict field validation). */
function strictFields(schema: Schema): Schema {
  const out: Schema = { ...schema };
  delete out['x-kubernetes-preserve-unknown-fields'];
  if (schema['x-kubernetes-preserve-unknown-fields'] === true) return out;
  if (schema.properties) {
    out.properties = Object.fromEntries(
      Object.entries(schema.properties as Record<string, Schema>).map(([k, v]) => [k, k === 'metadata' ? v : strictFields(v)]),
    );
    if (schema.additionalProperties === undefined) out.additionalProperties = false;
  }
  if (schema.items) out.items = strictFields(schema.items as Schema);
  if (schema.additionalProperties && typeof schema.additionalProperties === 'object')
    out.additionalProperties = strictFields(schema.additionalProperties as Schema);
  return out;
}

export interface FieldError {
  /** `spec.rules[0].from[0].source.principals` */
  readonly field: string;
  readonly message: string;
}

/** Validator for custom resources of one CRD version; returns the field errors (none = accepted). */
export function crdValidator(crd: { spec: { versions: { schema: { openAPIV3Schema: Schema } }[] } }): (obj: unknown) => FieldError[] {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const check = ajv.compile(strictFields(crd.spec.versions[0].schema.openAPIV3Schema));
  return (obj) => {
    if (check(obj)) return [];
    return (check.errors ?? []).map((e: ErrorObject) => {
      let field = e.instancePath
        .replace(/^\//, '')
        .replace(/\/(\d+)(?=\/|$)/g, '[$1]')
        .replace(/\//g, '.');
      if (e.keyword === 'additionalProperties') field += `${field ? '.' : ''}${String((e.params as { additionalProperty: string }).additionalProperty)}`;
      if (e.keyword === 'required') field += `${field ? '.' : ''}${String((e.params as { missingProperty: string }).missingProperty)}`;
      return { field, message: e.keyword === 'additionalProperties' ? 'unknown field' : (e.message ?? e.keyword) };
    });
  };
}
