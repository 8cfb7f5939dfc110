import { describe, expect, it, vi } from 'vitest';
import { hboneConnectionsPerKey, hboneThreads } from '../../native/hbone';
import { chooseHboneEngine } from './hbone-engine';

const runs = (): undefined => undefined;
const cannot = (): string => 'the native addon is not built (native/build/Release/nodemesh_native.node is missing)';

describe('NODEMESH_HBONE_ENGINE', () => {
  it('is native by default when the engine starts', () => {
    expect(chooseHboneEngine(undefined, runs)).toEqual({ engine: 'native' });
    expect(chooseHboneEngine('', runs)).toEqual({ engine: 'native' });
    expect(chooseHboneEngine(' Native ', runs)).toEqual({ engine: 'native' });
  });

  it('is node when named, without asking whether native could start', () => {
    let asked = false;
    const probe = (): undefined => {
      asked = true;
      return undefined;
    };
    expect(chooseHboneEngine('node', probe)).toEqual({ engine: 'node' });
    expect(chooseHboneEngine(' NODE ', probe)).toEqual({ engine: 'node' });
    expect(asked).toBe(false);
  });

  it('falls back to node by default when native cannot start, saying why and what to do', () => {
    const c = chooseHboneEngine(undefined, cannot);
    expect(c.engine).toBe('node');
    expect(c.fallback).toMatch(/native HBONE engine \(the default\) cannot start: the native addon is not built/);
    expect(c.fallback).toMatch(/bash scripts\/setup.sh/);
    expect(c.fallback).toMatch(/NODEMESH_HBONE_ENGINE=node/);
  });

  it('refuses an explicit native that cannot start, saying why and what to do', () => {
    expect(() => chooseHboneEngine('native', cannot)).toThrow(
      /NODEMESH_HBONE_ENGINE=native, but the native HBONE engine cannot start: the native addon is not built .*bash scripts\/setup.sh.*NODEMESH_HBONE_ENGINE=node/,
    );
  });

  it('refuses an unknown engine, naming the choices', () => {
    expect(() => chooseHboneEngine('nghttp2', runs)).toThrow(/NODEMESH_HBONE_ENGINE=nghttp2 is not an HBONE engine: use 'native' \(the default\) or 'node'/);
  });
});

describe('the native engine that cannot start, for real', () => {
  it('falls back to node by default, and an explicit native refuses, naming the missing addon', async () => {
    const before = process.env.NODEMESH_NATIVE_ADDON;
    process.env.NODEMESH_NATIVE_ADDON = '/nonexistent/nm-test/nodemesh_native.node';
    try {
      vi.resetModules(); // the addon path is read when native/binding.ts loads
      const fresh = await import('./hbone-engine.js');
      const c = fresh.chooseHboneEngine(undefined);
      expect(c.engine).toBe('node');
      expect(c.fallback).toMatch(/cannot start: the native addon is not built \(\/nonexistent\/nm-test\/nodemesh_native.node is missing\)/);
      expect(() => fresh.chooseHboneEngine('native')).toThrow(
        /NODEMESH_HBONE_ENGINE=native, but the native HBONE engine cannot start: the native addon is not built/,
      );
    } finally {
      if (before === undefined) delete process.env.NODEMESH_NATIVE_ADDON;
      else process.env.NODEMESH_NATIVE_ADDON = before;
      vi.resetModules();
    }
  });
});

describe('NODEMESH_HBONE_THREADS', () => {
  it('takes a whole number, 0 or unset for the default, and refuses anything else naming the variable', () => {
    expect(hboneThreads(undefined)).toBe(0);
    expect(hboneThreads('')).toBe(0);
    expect(hboneThreads('0')).toBe(0);
    expect(hboneThreads(' 2 ')).toBe(2);
    for (const bad of ['two', '-1', '1.5', '65', '0x2']) {
      expect(() => hboneThreads(bad)).toThrow(new RegExp(`NODEMESH_HBONE_THREADS=${bad.replace('.', '\\.')} is not a thread count: use a whole number 1–64`));
    }
  });
});

describe('NODEMESH_HBONE_CONNECTIONS', () => {
  it('takes a whole number, 0 or unset for one per engine thread, and refuses anything else naming the variable', () => {
    expect(hboneConnectionsPerKey(undefined)).toBe(0);
    expect(hboneConnectionsPerKey(' 1 ')).toBe(1);
    for (const bad of ['one', '-1', '65']) {
      expect(() => hboneConnectionsPerKey(bad)).toThrow(new RegExp(`NODEMESH_HBONE_CONNECTIONS=${bad} is not a connection count: use a whole number 1–64`));
    }
  });
});
