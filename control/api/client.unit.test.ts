import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log';
import { ControlPlane } from '../control-plane';
import { resolveKind, type KindInfo } from '../resources/kinds';
import { ApiClient } from './client';

let dir: string;
let cp: ControlPlane;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nm-client-'));
  cp = new ControlPlane({ dataDir: dir, listen: '127.0.0.1:0', logger: createLogger('t', 'silent') });
  await cp.start();
});
afterAll(async () => {
  await cp.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('ApiClient', () => {
  it('opens its connections through the supplied createConnection', async () => {
    const seen: string[] = [];
    // The server URL names a host that does not exist; only the connector knows where to go.
    const client = new ApiClient({
      server: 'http://control.nm-lab.invalid:15014',
      token: readFileSync(cp.tokenFile, 'utf8').trim(),
      createConnection: (opts) => {
        seen.push(`${String(opts.host)}:${String(opts.port)}`);
        return connect(cp.apiAddress.port, '127.0.0.1');
      },
    });
    const list = await client.list(resolveKind('ns') as KindInfo);
    expect(list.items.map((n) => n.metadata.name)).toEqual(['default']);
    expect(seen).toEqual(['control.nm-lab.invalid:15014']);
  });

  it('refuses server URLs it cannot use', () => {
    expect(() => new ApiClient({ server: 'not a url' })).toThrow(/invalid server URL "not a url"/);
    expect(() => new ApiClient({ server: 'ftp://x' })).toThrow(/use http:\/\/ or https:\/\//);
  });
});
