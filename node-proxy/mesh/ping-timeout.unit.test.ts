// The node proxy's HBONE client PING timeout setting, NODEMESH_HBONE_PING_TIMEOUT_MS, and its
// connect and handshake limits (each 10 s by default): NODEMESH_HBONE_CONNECT_TIMEOUT_MS (a new
// HBONE connection of its client, both engines), NODEMESH_HBONE_HANDSHAKE_TIMEOUT_MS (a peer's TLS
// handshake with its HBONE servers) and NODEMESH_NETNS_CONNECT_TIMEOUT_MS (a connect from inside a
// workload's netns, e.g. to the app). Each is read and validated (the default where unset), a bad
// value refused at start-up with the variable named and nothing opened; a lab on a slow machine
// gets them scaled like its other limits, unless the user set them.
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  CONNECT_TIMEOUT_ENV,
  connectTimeoutFromEnv,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_PING_TIMEOUT_MS,
  PING_TIMEOUT_ENV,
  pingTimeoutFromEnv,
} from '../../common/hbone/client';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, HANDSHAKE_TIMEOUT_ENV, handshakeTimeoutFromEnv } from '../../common/hbone/server';
import { cliEntry } from '../../common/paths';
import { labNodeProxyEnv } from '../../lab/time-scale';
import { DEFAULT_NETNS_CONNECT_TIMEOUT_MS, NETNS_CONNECT_TIMEOUT_ENV, netnsConnectTimeoutFromEnv } from '../proxy/inbound-limits';

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
    expect(labNodeProxyEnv({ NODEMESH_SPEED_FACTOR: '7.5' })[PING_TIMEOUT_ENV]).toBe('22500');
    expect(labNodeProxyEnv({ NODEMESH_SPEED_FACTOR: '99' })[PING_TIMEOUT_ENV]).toBe('150000'); // capped at 50x
    expect(labNodeProxyEnv({ NODEMESH_SPEED_FACTOR: '7.5', [PING_TIMEOUT_ENV]: '5000' })).not.toHaveProperty(PING_TIMEOUT_ENV);
  });
});

const settings = [
  { name: CONNECT_TIMEOUT_ENV, read: connectTimeoutFromEnv, fallback: DEFAULT_CONNECT_TIMEOUT_MS },
  { name: HANDSHAKE_TIMEOUT_ENV, read: handshakeTimeoutFromEnv, fallback: DEFAULT_HANDSHAKE_TIMEOUT_MS },
  { name: NETNS_CONNECT_TIMEOUT_ENV, read: netnsConnectTimeoutFromEnv, fallback: DEFAULT_NETNS_CONNECT_TIMEOUT_MS },
];

describe('the node proxy’s connect and handshake limits', () => {
  it('each is 10 s where unset, a whole number of milliseconds ≥ 1 otherwise', () => {
    for (const s of settings) {
      expect(s.fallback).toBe(10_000);
      expect(s.read({})).toBe(10_000);
      expect(s.read({ [s.name]: '' })).toBe(10_000);
      expect(s.read({ [s.name]: '150000' })).toBe(150_000);
      for (const bad of ['0', '-5', '2.5', '10s'])
        expect(() => s.read({ [s.name]: bad })).toThrow(`${s.name}=${bad}: expected a whole number of milliseconds ≥ 1`);
    }
  });

  it('a bad value stops the node proxy at start-up, naming the variable', async () => {
    for (const s of settings) {
      const r = await nodeProxy({ [s.name]: '10s' });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`node proxy cannot start: ${s.name}=10s: expected a whole number of milliseconds ≥ 1`);
    }
  }, 90_000);

  it("a lab's node proxy gets them (and 15006's connect limit, and the PING timeout) scaled by the speed factor, unless the user set one", () => {
    expect(labNodeProxyEnv({})).toEqual({});
    expect(labNodeProxyEnv({ NODEMESH_SPEED_FACTOR: '1' })).toEqual({});
    expect(labNodeProxyEnv({ NODEMESH_SPEED_FACTOR: '7.5' })).toEqual({
      [PING_TIMEOUT_ENV]: '22500',
      [CONNECT_TIMEOUT_ENV]: '75000',
      [HANDSHAKE_TIMEOUT_ENV]: '75000',
      [NETNS_CONNECT_TIMEOUT_ENV]: '75000',
      NODEMESH_INBOUND_CONNECT_TIMEOUT_MS: '75000',
    });
    const capped = labNodeProxyEnv({ NODEMESH_SPEED_FACTOR: '99', [HANDSHAKE_TIMEOUT_ENV]: '5000' });
    expect(capped[CONNECT_TIMEOUT_ENV]).toBe('500000'); // capped at 50x
    expect(capped).not.toHaveProperty(HANDSHAKE_TIMEOUT_ENV);
  });
});
