// Which lab the config CLI talks to: --lab, else the only lab running a mesh when no server is named.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = mkdtempSync(join(tmpdir(), 'nm-labs-'));
process.env.NODEMESH_LAB_STATE_ROOT = root; // read when lab/state loads

describe('chooseLab', () => {
  let m: typeof import('./connect');
  let state: typeof import('../state');
  let topology: typeof import('../topology');
  beforeAll(async () => {
    state = await import('../state.js');
    topology = await import('../topology.js');
    m = await import('./connect.js');
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const makeLab = (lab: string, withMesh: boolean): void => {
    state.writeLabTopology({ ...topology.planLab({ lab, nodes: 1, podsPerNode: 1 }, '/cg'), phase: 'ready' });
    if (withMesh) {
      mkdirSync(join(root, lab, 'control', 'ca'), { recursive: true });
      writeFileSync(join(root, lab, 'control', 'token'), 'secret\n', { mode: 0o600 });
      writeFileSync(join(root, lab, 'control', 'ca', 'root-cert.pem'), 'ROOT PEM\n');
    }
  };

  it('uses the only lab that runs a mesh, unless a server is named', () => {
    expect(m.chooseLab({ env: {} })).toBeUndefined();
    makeLab('plain', false);
    expect(m.chooseLab({ env: {} })).toBeUndefined(); // a lab without a control plane does not count
    makeLab('one', true);
    expect(m.labsWithMesh()).toEqual(['one']);
    expect(m.chooseLab({ env: {} })).toBe('one');
    expect(m.chooseLab({ env: {}, server: 'http://127.0.0.1:15014' })).toBeUndefined();
    expect(m.chooseLab({ env: { NODEMESH_SERVER: 'http://x:1' } })).toBeUndefined();
    const c = m.labConnection('one');
    // HTTPS to the control host's address, verified with the control plane's CA root
    expect(c).toMatchObject({ server: 'https://10.199.0.254:15014', token: 'secret', ca: 'ROOT PEM\n' });
    makeLab('two', true);
    expect(m.chooseLab({ env: {} })).toBeUndefined(); // ambiguous: name one with --lab
    expect(m.chooseLab({ lab: 'two', env: { NODEMESH_SERVER: 'http://x:1' } })).toBe('two');
  });

  it('explains a bad lab name and a lab without a mesh', () => {
    expect(() => m.chooseLab({ lab: 'Bad_Name', env: {} })).toThrow(/not valid/);
    expect(() => m.labConnection('plain')).toThrow(/runs no control plane/);
    expect(() => m.labConnection('nolab')).toThrow(/is not up/);
  });
});
