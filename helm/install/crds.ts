// The mesh's CustomResourceDefinitions, generated from the control plane's own zod schemas
// (control/resources/*): zod's JSON Schema export, reduced to what a Kubernetes *structural*
// OpenAPI v3 schema may hold. One source, so the API server and the control plane agree on every
// field; helm/install/chart-files.unit.test.ts fails when helm/nodemesh/crds/ is not up to date.
//
// What a structural schema cannot say is left to the control plane, which validates every
// resource it reads with the same zod schemas and reports the field it refuses: cross-field rules
// (selector vs targetRefs), IP/CIDR syntax, label keys, "*" placement in match strings.
import { z } from 'zod';
import { kindInfo, type KindInfo } from '../../control/resources/kinds';

export type JsonSchema = { [key: string]: unknown };

/** Keywords that a structural schema may carry and that zod emits. Anything else is an error. */
const KEPT = new Set([
  'type',
  'properties',
  'items',
  'required',
  'enum',
  'pattern',
  'minLength',
  'maxLength',
  'minItems',
  'maxItems',
  'minimum',
  'maximum',
  'default',
  'description',
  'additionalProperties',
  'format',
]);
/** Keywords dropped: JSON Schema bookkeeping, and what Kubernetes forbids or prunes anyway. */
const DROPPED = new Set(['$schema', 'propertyNames']);

/**
 * Turns zod's JSON Schema (draft 2020-12) into a structural OpenAPI v3 schema: every node typed,
 * `additionalProperties: false` removed (Kubernetes forbids it; unknown fields are pruned, and
 * refused by kubectl's strict field validation), unions refused (a structural schema cannot type
 * them), and an untyped node (`z.unknown()`) kept with x-kubernetes-preserve-unknown-fields.
 */
export function structural(schema: JsonSchema, at = '$'): JsonSchema {
  if (Object.keys(schema).length === 0) return { 'x-kubernetes-preserve-unknown-fields': true };
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (DROPPED.has(key)) continue;
    if (!KEPT.has(key)) throw new Error(`${at}: "${key}" cannot be expressed in a structural CRD schema; change the zod schema or teach helm/install/crds.ts`);
    if (key === 'properties') {
      out.properties = Object.fromEntries(Object.entries(value as Record<string, JsonSchema>).map(([k, v]) => [k, structural(v, `${at}.${k}`)]));
    } else if (key === 'items') {
      out.items = structural(value as JsonSchema, `${at}[]`);
    } else if (key === 'additionalProperties') {
      if (value === false) continue;
      out.additionalProperties = structural(value as JsonSchema, `${at}.*`);
    } else if (key === 'type' && typeof value !== 'string') {
      throw new Error(
        `${at}: a value of several types (${JSON.stringify(value)}) cannot be expressed in a structural CRD schema; change the zod schema or teach helm/install/crds.ts`,
      );
    } else out[key] = value;
  }
  if (out.type === undefined && out['x-kubernetes-preserve-unknown-fields'] === undefined) {
    throw new Error(`${at}: a structural CRD schema needs a type here`);
  }
  return out;
}

/** The spec schema of `info` as a structural schema (input shape: defaulted fields optional). */
export function specSchema(info: KindInfo): JsonSchema {
  return structural(z.toJSONSchema(info.spec, { io: 'input', unrepresentable: 'throw' }) as JsonSchema, 'spec');
}

interface CrdOptions {
  readonly printerColumns: readonly { name: string; type: string; jsonPath: string; description: string }[];
}

/** The CRDs the chart ships, in the order they are printed. */
const CRD_KINDS: readonly { kind: string; opts: CrdOptions }[] = [
  {
    kind: 'AuthorizationPolicy',
    opts: { printerColumns: [{ name: 'Action', type: 'string', jsonPath: '.spec.action', description: 'ALLOW or DENY' }] },
  },
  {
    kind: 'PeerAuthentication',
    opts: { printerColumns: [{ name: 'Mode', type: 'string', jsonPath: '.spec.mtls.mode', description: 'STRICT, PERMISSIVE or UNSET' }] },
  },
  {
    kind: 'Workload',
    opts: {
      printerColumns: [
        { name: 'Node', type: 'string', jsonPath: '.spec.node', description: 'the node whose node proxy captures it' },
        { name: 'Address', type: 'string', jsonPath: '.spec.addresses[0]', description: 'first address' },
      ],
    },
  },
];

export function crdFor(kind: string): JsonSchema {
  const info = kindInfo(kind);
  const entry = CRD_KINDS.find((k) => k.kind === kind);
  if (!info || !entry) throw new Error(`no CRD for kind ${kind}`);
  const [group, version] = info.apiVersion.split('/');
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${info.plural}.${group}`,
      labels: { 'app.kubernetes.io/part-of': 'nodemesh' },
    },
    spec: {
      group,
      names: {
        kind: info.kind,
        listKind: `${info.kind}List`,
        plural: info.plural,
        singular: info.singular,
        shortNames: [...info.shortNames],
        categories: ['nodemesh'],
      },
      scope: info.namespaced ? 'Namespaced' : 'Cluster',
      versions: [
        {
          name: version,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [...entry.opts.printerColumns, { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: `${info.kind} (${info.apiVersion}); the same schema the nodemesh control plane validates with.`,
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: specSchema(info),
                status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
              },
              ...(info.specOptional ? {} : { required: ['spec'] }),
            },
          },
        },
      ],
    },
  };
}

/** Every CRD of the chart, with the file name it has under helm/nodemesh/crds/. */
export function meshCrds(): { file: string; crd: JsonSchema }[] {
  return CRD_KINDS.map(({ kind }) => {
    const crd = crdFor(kind);
    const spec = crd.spec as { group: string; names: { plural: string } };
    return { file: `${spec.group}_${spec.names.plural}.yaml`, crd };
  });
}
