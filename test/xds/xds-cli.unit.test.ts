// `nodemesh xds get` against a real server: prints the workload API as readable JSON lines.
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlGrpc } from '../../control/grpc';
import { MemoryStore } from '../../control/store/base-store';
import { runXdsGet } from '../../control/xds/cli';
import { servePlaintext } from '../support/control-plane';

let store: MemoryStore;
let running: ControlGrpc;

beforeAll(async () => {
  store = new MemoryStore();
  await store.applyAll([
    {
      apiVersion: 'nodemesh.io/v1alpha1',
      kind: 'Workload',
      metadata: { name: 'web-1', namespace: 'default', labels: { app: 'web' } },
      spec: { node: 'node-1', addresses: ['10.200.1.5'] },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'default' },
      spec: { clusterIP: '10.96.0.12', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
    },
  ]);
  running = await servePlaintext(store);
});
afterAll(async () => {
  await running.stop();
  await store.close();
});

async function run(args: string[]): Promise<{ code: number; lines: Array<Record<string, unknown>> }> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (c) => (text += String(c)));
  const code = await runXdsGet(['--server', `127.0.0.1:${running.ports.plaintext}`, ...args], { stdout: out });
  return {
    code,
    lines: text
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('nodemesh xds get', () => {
  it('prints every Address with IPs as text', async () => {
    const { code, lines } = await run([]);
    expect(code).toBe(0);
    expect(lines.map((l) => l.name)).toEqual(['Workload/default/web-1', 'default/web.default.svc.cluster.local']);
    expect(lines[0]!.resource).toMatchObject({ workload: { name: 'web-1', addresses: ['10.200.1.5'], node: 'node-1' } });
    expect(lines[1]!.resource).toMatchObject({ service: { hostname: 'web.default.svc.cluster.local', addresses: [{ address: '10.96.0.12' }] } });
  });

  it('subscribes to named resources only', async () => {
    const { lines } = await run(['addresses', '--name', 'default/web.default.svc.cluster.local', '--name', 'default/missing']);
    expect(lines).toEqual([expect.objectContaining({ name: 'default/web.default.svc.cluster.local' }), { name: 'default/missing', removed: true }]);
  });

  it('says what to check when nothing answers', async () => {
    await expect(runXdsGet(['--server', '127.0.0.1:1', '--timeout', '0.5'], { stdout: new PassThrough() })).rejects.toThrow(
      /no answer from the xDS server at 127.0.0.1:1|ended the stream: UNAVAILABLE/,
    );
  });
});
