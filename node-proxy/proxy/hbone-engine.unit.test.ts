import { describe, expect, it } from 'vitest';
import { hboneEngine } from './hbone-engine';

describe('NODEMESH_HBONE_ENGINE', () => {
  it('is node by default and when named', () => {
    expect(hboneEngine(undefined, () => true)).toBe('node');
    expect(hboneEngine('', () => true)).toBe('node');
    expect(hboneEngine('node', () => true)).toBe('node');
  });

  it('is native when named and the addon has the engine', () => {
    expect(hboneEngine('native', () => true)).toBe('native');
    expect(hboneEngine(' Native ', () => true)).toBe('native');
  });

  it('refuses an unknown engine, naming the choices', () => {
    expect(() => hboneEngine('nghttp2', () => true)).toThrow(/NODEMESH_HBONE_ENGINE=nghttp2 is not an HBONE engine: use 'node' \(the default\) or 'native'/);
  });

  it('refuses native when the addon was built without it, saying how to rebuild', () => {
    expect(() => hboneEngine('native', () => false)).toThrow(/rebuild it with `bash scripts\/setup.sh`/);
  });
});
