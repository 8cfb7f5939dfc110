import { describe, expect, it } from 'vitest';
import { parseDocuments } from './documents';
import { collectionPath, itemPath, parseApiPath } from './routes';
import { resolveKind, type KindInfo } from '../resources/kinds';
import { bearerMatches } from './token';

const k = (s: string) => resolveKind(s) as KindInfo;

describe('config API paths', () => {
  it('maps paths to operations and back', () => {
    expect(parseApiPath('/v1/apply')).toEqual({ op: 'apply' });
    expect(parseApiPath('/v1/watch')).toEqual({ op: 'watch' });
    expect(parseApiPath('/v1/services')).toMatchObject({ op: 'collection', kind: { kind: 'Service' } });
    expect(parseApiPath('/v1/namespaces')).toMatchObject({ op: 'collection', kind: { kind: 'Namespace' } });
    expect(parseApiPath('/v1/namespaces/shop')).toMatchObject({ op: 'item', kind: { kind: 'Namespace' }, name: 'shop' });
    expect(parseApiPath('/v1/namespaces/shop/httproutes')).toMatchObject({ op: 'collection', kind: { kind: 'HTTPRoute' }, namespace: 'shop' });
    expect(parseApiPath('/v1/namespaces/shop/workloads/a')).toMatchObject({ op: 'item', kind: { kind: 'Workload' }, namespace: 'shop', name: 'a' });
    expect(itemPath(k('svc'), 'web', 'shop')).toBe('/v1/namespaces/shop/services/web');
    expect(itemPath(k('ns'), 'shop')).toBe('/v1/namespaces/shop');
    expect(collectionPath(k('ap'))).toBe('/v1/authorizationpolicies');
    for (const p of ['/v1/services/web', '/v1/namespaces/a/namespaces', '/v1/pods', '/api/v1/services', '/v1/namespaces/a/services/b/c']) {
      expect(() => parseApiPath(p), p).toThrow();
    }
    expect(() => parseApiPath('/v1/services/web')).toThrow('Service is namespaced: use /v1/namespaces/{namespace}/services/web');
  });
});

describe('parseDocuments', () => {
  it('reads multi-document YAML, JSON arrays and Lists, skipping empty documents', () => {
    expect(parseDocuments('a: 1\n---\n---\nb: 2\n')).toEqual([{ a: 1 }, { b: 2 }]);
    expect(parseDocuments('[{"a":1},{"kind":"List","items":[{"b":2}]}]')).toEqual([{ a: 1 }, { b: 2 }]);
    expect(parseDocuments('')).toEqual([]);
  });
  it('names the document and line of a syntax error', () => {
    expect(() => parseDocuments('a: 1\n---\nb: [\n', 'app.yaml')).toThrow(/^app\.yaml: document 2 \(line \d+\) is not valid YAML\/JSON/);
    expect(() => parseDocuments('a: 1\na: 2\n', 'x.yaml')).toThrow(/x\.yaml: document 1/);
    expect(() => parseDocuments('- 1\n- 2\n', 'nums')).toThrow('nums: item 1 is a number, not a resource object');
  });
});

describe('bearerMatches', () => {
  it('accepts only the exact token', () => {
    expect(bearerMatches('Bearer abc', 'abc')).toBe(true);
    expect(bearerMatches('bearer abc', 'abc')).toBe(true);
    expect(bearerMatches('Bearer abd', 'abc')).toBe(false);
    expect(bearerMatches('Bearer abcd', 'abc')).toBe(false);
    expect(bearerMatches('Basic abc', 'abc')).toBe(false);
    expect(bearerMatches(undefined, 'abc')).toBe(false);
  });
});
