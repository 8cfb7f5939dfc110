// The chart's values: values.yaml passes values.schema.json (checked with ajv, as Helm checks it),
// and -f / --set merge as Helm merges them (the forms the chart's users type).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { applySet, chartDir, mergeValues, resolveValues } from './values';

describe('chart values', () => {
  it('values.yaml is valid against values.schema.json, and the schema refuses a bad value naming it', () => {
    const ajv = new Ajv({ allErrors: true, strict: false });
    const check = ajv.compile(JSON.parse(readFileSync(join(chartDir, 'values.schema.json'), 'utf8')));
    const values = parseYaml(readFileSync(join(chartDir, 'values.yaml'), 'utf8'));
    expect(check(values), JSON.stringify(check.errors)).toBe(true);
    const bad = structuredClone(values);
    bad.nodeProxy.bpffsPath = 'sys/fs/bpf';
    bad.cni.enabled = 'yes';
    expect(check(bad)).toBe(false);
    expect(check.errors?.map((e) => e.instancePath).sort()).toEqual(['/cni/enabled', '/nodeProxy/bpffsPath']);
  });

  it('--set: dotted keys, list indices, {a,b} lists, escapes and Helm scalar typing', () => {
    const v: Record<string, unknown> = { a: { keep: 1, list: [1, 2, 3] } };
    applySet(v, 'a.b=true,a.n=42,a.s=0042,a.list[1].x=y');
    applySet(v, 'c={x,y},d=a\\,b,e\\.f=g,h=null');
    expect(v).toEqual({ a: { keep: 1, b: true, n: 42, s: '0042', list: [1, { x: 'y' }, 3] }, c: ['x', 'y'], d: 'a,b', 'e.f': 'g' });
    applySet(v, 'a.keep=null');
    expect((v.a as Record<string, unknown>).keep).toBeUndefined();
    expect(() => applySet(v, 'novalue')).toThrow(/"novalue" is not key=value/);
  });

  it('files merge maps key by key and replace lists; --set comes last', () => {
    expect(mergeValues({ a: { x: 1, y: [1, 2] }, b: 2 }, { a: { y: [3] }, b: null })).toEqual({ a: { x: 1, y: [3] } });
    const v = resolveValues({
      files: [{ name: 'f', text: 'control:\n  replicas: 3\nnodeProxy:\n  tolerations: []\n' }],
      sets: ['control.replicas=2'],
    });
    expect(v.control.replicas).toBe(2);
    expect(v.nodeProxy.tolerations).toEqual([]);
    expect(v.nodeProxy.resources.limits?.memory).toBe('1Gi');
  });

  it('names the file that is not a mapping', () => {
    expect(() => resolveValues({ files: [{ name: 'list.yaml', text: '- a\n- b\n' }] })).toThrow(/list\.yaml must be a YAML mapping/);
  });
});
