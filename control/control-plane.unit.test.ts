import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Counter } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../common/log';
import { ControlPlane, type ControlPlaneComponent } from './control-plane';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'nm-cp-'));
  dirs.push(d);
  return d;
}
const quiet = () => createLogger('cp-test', 'silent');

describe('ControlPlane', () => {
  it('starts components after the store and API, stops them in reverse, and serves their metrics and readiness', async () => {
    const order: string[] = [];
    let ready = false;
    const component = (name: string): ControlPlaneComponent => ({
      name,
      async start(cp) {
        order.push(`start ${name} rev=${cp.store.revision}`);
        new Counter({ name: `nm_test_${name}_total`, help: 'test', registers: [cp.registry] }).inc(3);
      },
      async stop() {
        order.push(`stop ${name}`);
      },
      ready: () => name !== 'b' || ready,
    });
    const cp = new ControlPlane({ dataDir: tempDir(), listen: '127.0.0.1:0', logger: quiet(), components: [component('a'), component('b')] });
    await cp.start();
    try {
      expect(order).toEqual(['start a rev=1', 'start b rev=1']);
      expect((await fetch(`${cp.apiURL}/healthz/ready`)).status).toBe(503);
      ready = true;
      expect((await fetch(`${cp.apiURL}/healthz/ready`)).status).toBe(200);
      const metrics = await (await fetch(`${cp.apiURL}/metrics`)).text();
      expect(metrics).toMatch(/^nm_test_a_total 3$/m);
      expect(metrics).toMatch(/^nodemesh_config_revision 1$/m);
    } finally {
      await cp.stop();
    }
    expect(order.slice(2)).toEqual(['stop b', 'stop a']);
  });

  it('undoes a failed start: started components stopped, store lock released, port closed', async () => {
    const dir = tempDir();
    const stopped: string[] = [];
    const cp = new ControlPlane({
      dataDir: dir,
      listen: '127.0.0.1:0',
      logger: quiet(),
      components: [
        { name: 'ok', start: async () => undefined, stop: async () => void stopped.push('ok') },
        { name: 'broken', start: async () => Promise.reject(new Error('cannot bind 15012')), stop: async () => void stopped.push('broken') },
      ],
    });
    await expect(cp.start()).rejects.toThrow('cannot bind 15012');
    expect(stopped).toEqual(['ok']);
    expect(existsSync(join(dir, 'store.lock'))).toBe(false);
    const again = new ControlPlane({ dataDir: dir, listen: '127.0.0.1:0', logger: quiet() });
    await again.start();
    await again.stop();
  });

  it('says when the API port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const cp = new ControlPlane({ dataDir: tempDir(), listen: `127.0.0.1:${port}`, logger: quiet() });
      await expect(cp.start()).rejects.toThrow(`cannot listen on 127.0.0.1:${port}: the address is in use`);
    } finally {
      blocker.close();
    }
  });
});
