// The node proxy's HBONE client PING timeout setting, NODEMESH_HBONE_PING_TIMEOUT_MS: read and
// validated (the default where unset), a bad value refused at start-up with the variable named and
// nothing opened; a lab on a slow machine gets it scaled like its other limits, unless the user
// set it.
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { DEFAULT_PING_TIMEOUT_MS, PING_TIMEOUT_ENV, pingTimeoutFromEnv } from '../../common/hbone/client';
import { cliEntry } from '../../common/paths';
import { labNodeProxyEnv } from '../../lab/time-scale';

function nodeProxy(env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  const argv = [cliEntry, 'node-proxy', '--node', 'nm-ping', '--control', '127.0.0.1:1', '--token-file', '/nonexistent', '--trust-bundle', '/nonexistent'];
  return new Promise((resolve) => {
    const child = execFile(process.execPath, argv, { env: { ...process.env, ...env }, timeout: 30_000 }, (_err, _stdout, stderr) =>
      resolve({ code: child.exitCode, stderr }),
    );
  });
}

describe('NODEMESH_HBONE_PING_TIMEOUT_MS', () => {
  it('is the default where unset, a whole number of milliseconds ≥ 1 otherwise', () => {
    expect(pingTimeoutFromEnv({})).toBe(DEFAULT_PING_TIMEOUT_MS);
    expect(pingTimeoutFromEnv({ [PING_TIMEOUT_ENV]: '' })).toBe(DEFAULT_PING_TIMEOUT_MS);
    expect(pingTimeoutFromEnv({ [PING_TIMEOUT_ENV]: '24000' })).toBe(24_000);
    for (const bad of ['0', '-5', '2.5', '3s', 'never']) {
      expect(() => pingTimeoutFromEnv({ [PING_TIMEOUT_ENV]: bad })).toThrow(`${PING_TIMEOUT_ENV}=${bad}: expected a whole number of milliseconds ≥ 1`);
    }
  });

  it('a bad value stops the node proxy at start-up, naming the variable', async () => {
    const r = await nodeProxy({ [PING_TIMEOUT_ENV]: '3s' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('node proxy cannot start: NODEMESH_HBONE_PING_TIMEOUT_MS=3s: expected a whole number of milliseconds ≥ 1');
  }, 40_000);

  it("a lab's node proxy gets it scaled by the speed factor, unless the user set it", () => {
    expect(labNodeProxyEnv({})).toEqual({});
    expect(labNodeProxyEnv({ NODEMESH_SPEED_FACTOR: '1' })).toEqual({});
    expect(labNodeProxyEnv({ NODEMESH_SPEED_FACTOR: '7.5' })).toEqual({ [PING_TIMEOUT_ENV]: '22500' });
    expect(labNodeProxyEnv({ NODEMESH_SPEED_FACTOR: '99' })).toEqual({ [PING_TIMEOUT_ENV]: '150000' }); // capped at 50x
    expect(labNodeProxyEnv({ NODEMESH_SPEED_FACTOR: '7.5', [PING_TIMEOUT_ENV]: '5000' })).toEqual({});
  });
});
