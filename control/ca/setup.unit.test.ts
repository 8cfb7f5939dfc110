import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { identity } from '../../common/identity/spiffe';
import type { Workload } from '../resources/workload';
import { MemorySnapshot } from '../store/snapshot';
import { rootFiles } from './material';
import { openCertificateService } from './setup';
import { NodeTokens } from './tokens';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nm-ca-setup-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('openCertificateService', () => {
  it('opens the CA in the data dir, and authorises from the store and the node token file', async () => {
    const w = {
      apiVersion: 'nodemesh.io/v1alpha1',
      kind: 'Workload',
      metadata: { name: 'web-1', namespace: 'shop' },
      spec: { serviceAccount: 'web', node: 'node-1', addresses: ['10.200.1.10'] },
    } as Workload;
    const opts = await openCertificateService({ dataDir: dir, snapshot: () => MemorySnapshot.of(1, [w]) });
    expect(opts.ca.trustDomain).toBe('cluster.local');
    expect(opts.ca.material.source).toBe('generated');
    expect(rootFiles(dir).certFile).toMatch(/ca\/root-cert.pem$/);
    expect(opts.placement(identity('shop', 'web'), 'node-1')).toBe(true);
    expect(opts.placement(identity('shop', 'web'), 'node-2')).toBe(false);
    const token = NodeTokens.forDataDir(dir).issue('node-1');
    expect(await opts.nodes.authenticate(token)).toBe('node-1');
    await expect(openCertificateService({ dataDir: dir, snapshot: () => MemorySnapshot.empty(), trustDomain: 'Bad' })).rejects.toThrow(/trust domain 'Bad'/);
  });
});
