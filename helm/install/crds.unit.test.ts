// The CRDs: generated from the control plane's zod schemas and committed up to date; valid
// CustomResourceDefinitions; their schemas accept every example in docs/kubernetes.md (which the
// control plane accepts too) and refuse bad resources naming the field.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { projectRoot } from '../../common/paths';
import { kindInfo } from '../../control/resources/kinds';
import { validateResource } from '../../control/resources/validate';
import { crdValidator, validateKubernetesObject, type FieldError } from '../../test/support/kube-schemas';
import { generatedChartFiles } from './chart-files';
import { crdFor, meshCrds, structural } from './crds';
import { chartDir } from './values';

type Crd = Parameters<typeof crdValidator>[0];

/** Every resource in the ```yaml blocks of docs/kubernetes.md. */
function docExamples(): { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } }[] {
  const md = readFileSync(join(projectRoot, 'docs', 'kubernetes.md'), 'utf8');
  const blocks = [...md.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]);
  return blocks.flatMap((b) => parseAllDocuments(b).map((d) => d.toJS())).filter((d) => d && typeof d === 'object' && 'kind' in d);
}

const validators = new Map(meshCrds().map(({ crd }) => [(crd as { spec: { names: { kind: string } } }).spec.names.kind, crdValidator(crd as Crd)]));
const check = (obj: { kind: string; [field: string]: unknown }): FieldError[] => {
  const v = validators.get(obj.kind);
  if (!v) throw new Error(`no CRD for ${obj.kind}`);
  return v(obj);
};

describe('the mesh CRDs', () => {
  it('helm/nodemesh/crds/ and values.schema.json are what `npm run gen:chart` generates now', () => {
    for (const [rel, content] of generatedChartFiles()) {
      const committed = readFileSync(join(chartDir, rel), 'utf8');
      expect(committed, `helm/nodemesh/${rel} is out of date with its source; run 'npm run gen:chart' and commit it`).toBe(content);
    }
  });

  it('are valid CustomResourceDefinitions with structural schemas', async () => {
    for (const { file } of meshCrds()) {
      const crd = parseYaml(readFileSync(join(chartDir, 'crds', file), 'utf8'));
      await validateKubernetesObject(crd);
    }
    expect(meshCrds().map(({ file }) => file)).toEqual([
      'security.nodemesh.io_authorizationpolicies.yaml',
      'security.nodemesh.io_peerauthentications.yaml',
      'nodemesh.io_workloads.yaml',
    ]);
  });

  it("accept every example of docs/kubernetes.md, as the control plane's validation does", () => {
    const examples = docExamples().filter((d) => validators.has(d.kind));
    expect(new Set(examples.map((e) => e.kind))).toEqual(new Set(['AuthorizationPolicy', 'PeerAuthentication', 'Workload']));
    for (const e of examples) {
      expect(check(e), `${e.kind} ${e.metadata.name}`).toEqual([]);
      expect(() => validateResource(e)).not.toThrow();
    }
  });

  it('the docs examples of built-in kinds match the Kubernetes and Gateway API schemas', async () => {
    const builtIn = docExamples().filter((d) => !validators.has(d.kind));
    expect(builtIn.map((d) => d.kind)).toEqual(expect.arrayContaining(['Gateway']));
    for (const d of builtIn) {
      await validateKubernetesObject(d);
      if (kindInfo(d.kind)) expect(() => validateResource(d)).not.toThrow();
    }
  });

  it('the demo the k3s machine applies (helm/demo/demo.yaml) matches the Kubernetes, Gateway API and mesh schemas', async () => {
    const docs = parseAllDocuments(readFileSync(join(projectRoot, 'helm', 'demo', 'demo.yaml'), 'utf8')).map((d) => d.toJS());
    expect(docs.length).toBeGreaterThan(10);
    for (const d of docs) {
      if (validators.has(d.kind)) expect(check(d), `${d.kind} ${d.metadata.name}`).toEqual([]);
      else await validateKubernetesObject(d);
      if (kindInfo(d.kind)) expect(() => validateResource(d)).not.toThrow();
    }
  });

  it('refuse bad resources, naming the field', () => {
    const ap = (spec: unknown) => ({
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'p', namespace: 'demo' },
      spec,
    });
    expect(check(ap({ action: 'AUDIT' }))).toEqual([{ field: 'spec.action', message: 'must be equal to one of the allowed values' }]);
    expect(check(ap({ rules: [{ from: [{ source: { principal: ['x'] } }] }] }))).toEqual([
      { field: 'spec.rules[0].from[0].source.principal', message: 'unknown field' },
    ]);
    expect(check(ap({ rules: [{ to: [{ operation: { ports: [8080] } }] }] }))).toEqual([
      { field: 'spec.rules[0].to[0].operation.ports[0]', message: 'must be string' },
    ]);
    expect(check(ap({ targetRefs: [{ kind: 'Pod', name: 'x' }] }))).toEqual([
      { field: 'spec.targetRefs[0].kind', message: 'must be equal to one of the allowed values' },
    ]);
    expect(check(ap({ selector: { matchLabels: { app: 'not a label value!' } } }))[0].field).toBe('spec.selector.matchLabels.app');

    const pa = (spec: unknown) => ({ apiVersion: 'security.nodemesh.io/v1alpha1', kind: 'PeerAuthentication', metadata: { name: 'p' }, spec });
    expect(check(pa({ mtls: { mode: 'DISABLE' } }))).toEqual([{ field: 'spec.mtls.mode', message: 'must be equal to one of the allowed values' }]);

    const wl = { apiVersion: 'nodemesh.io/v1alpha1', kind: 'Workload', metadata: { name: 'vm1' } };
    expect(check(wl)).toEqual([{ field: 'spec', message: "must have required property 'spec'" }]);
    expect(check({ ...wl, spec: { addresses: ['10.0.0.5'] } })).toEqual([{ field: 'spec.node', message: "must have required property 'node'" }]);
    expect(check({ ...wl, spec: { node: 'n1', addresses: [], ports: [{ port: 70000 }] } })).toEqual([
      { field: 'spec.addresses', message: 'must NOT have fewer than 1 items' },
      { field: 'spec.ports[0].port', message: 'must be <= 65535' },
    ]);
  });

  it('the generator refuses what a structural schema cannot hold instead of writing it', () => {
    const scalars = z.toJSONSchema(z.strictObject({ port: z.union([z.number(), z.string()]) })) as Record<string, unknown>;
    expect(() => structural(scalars)).toThrow(/\$\.port: a value of several types \(\["number","string"\]\) cannot be expressed/);
    const objects = z.toJSONSchema(z.strictObject({ ref: z.union([z.strictObject({ a: z.string() }), z.strictObject({ b: z.string() })]) })) as Record<
      string,
      unknown
    >;
    expect(() => structural(objects)).toThrow(/\$\.ref: "anyOf" cannot be expressed in a structural CRD schema/);
    expect(structural({ type: 'object', properties: { x: {} }, additionalProperties: false })).toEqual({
      type: 'object',
      properties: { x: { 'x-kubernetes-preserve-unknown-fields': true } },
    });
    expect(() => crdFor('Service')).toThrow(/no CRD for kind Service/);
  });
});
