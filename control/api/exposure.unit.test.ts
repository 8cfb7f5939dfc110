// The config API's exposure: plain HTTP on loopback only; on any other address HTTPS with a
// certificate from the mesh CA that clients verify with the trust bundle; handshake and request
// timeouts close connections that hold it without using it, and count them.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log';
import { ControlPlane } from '../control-plane';
import { resolveKind, type KindInfo } from '../resources/kinds';
import { ApiClient } from './client';
import { createApiServer, DEFAULT_API_LIMITS } from './exposure';
import { apiLimitsFromEnv } from '../limits';
import { labControlPlaneEnv } from '../../lab/time-scale';
import { Registry } from 'prom-client';

const dirs: string[] = [];
const planes: ControlPlane[] = [];
afterAll(async () => {
  for (const cp of planes) await cp.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function start(listen: string, extra: Partial<ConstructorParameters<typeof ControlPlane>[0]> = {}): Promise<ControlPlane> {
  const dir = mkdtempSync(join(tmpdir(), 'nm-expose-'));
  dirs.push(dir);
  const cp = new ControlPlane({ dataDir: dir, listen, logger: createLogger('control-test', 'silent'), ...extra });
  planes.push(cp);
  await cp.start();
  return cp;
}

const closedAfter = (s: Socket): Promise<number> => {
  const t0 = performance.now();
  return new Promise((resolve) => {
    s.on('error', () => undefined);
    s.resume();
    s.once('close', () => resolve(performance.now() - t0));
  });
};

const namespaces = resolveKind('namespaces') as KindInfo;

describe('config API exposure', () => {
  it('serves HTTPS with the mesh CA on a non-loopback address; clients verify it with the trust bundle', async () => {
    const cp = await start('0.0.0.0:0');
    expect(cp.apiURL).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const token = readFileSync(cp.tokenFile, 'utf8').trim();
    const root = readFileSync(join(cp.dataDir, 'ca', 'root-cert.pem'), 'utf8');
    expect(cp.apiTls?.trustBundlePem).toContain(root.trim());
    const client = new ApiClient({ server: cp.apiURL, token, ca: root });
    expect((await client.list(namespaces)).items.map((n) => n.metadata.name)).toContain('default');
    // without the mesh root the certificate is not trusted; plain HTTP gets no answer
    await expect(new ApiClient({ server: cp.apiURL, token }).list(namespaces)).rejects.toThrow(/certificate|self.signed|issuer/i);
    await expect(new ApiClient({ server: cp.apiURL.replace('https', 'http'), token, timeoutMs: 2_000 }).list(namespaces)).rejects.toThrow();
    // the token is still required over TLS
    await expect(new ApiClient({ server: cp.apiURL, token: 'x'.repeat(token.length), ca: root }).list(namespaces)).rejects.toMatchObject({ status: 401 });
  });

  it('is plain HTTP on loopback, and on another address only when asked for explicitly', async () => {
    expect((await start('127.0.0.1:0')).apiURL).toMatch(/^http:\/\//);
    const open = await start('0.0.0.0:0', { allowPlaintextRemote: true });
    expect(open.apiURL).toMatch(/^http:\/\//);
    expect(open.apiTls).toBeUndefined();
  });

  it('starts with a headers limit raised past the request limit (the lab on a slow machine), the request limit raised with it', async () => {
    // a 5.10 VM at speed factor 41.9: the lab's control plane exited at start (node:http's ERR_OUT_OF_RANGE)
    const limits = apiLimitsFromEnv(labControlPlaneEnv({ NODEMESH_SPEED_FACTOR: '41.9' }));
    expect(limits.headersTimeoutMs).toBe(419_000);
    const cp = await start('127.0.0.1:0', { apiLimits: limits });
    expect((await fetch(`${cp.apiURL}/healthz/ready`)).status).toBe(200);
    const server = createApiServer(() => undefined, undefined, { ...DEFAULT_API_LIMITS, ...limits }, new Registry());
    expect([server.headersTimeout, server.requestTimeout]).toEqual([419_000, 419_000]);
    server.close();
  });

  it('closes connections that never finish the TLS handshake or the request, and counts them', async () => {
    const cp = await start('0.0.0.0:0', { apiLimits: { handshakeTimeoutMs: 300, headersTimeoutMs: 400, requestTimeoutMs: 600 } });
    const port = Number(new URL(cp.apiURL).port);
    const silent = await Promise.all(Array.from({ length: 20 }, () => closedAfter(tcpConnect({ host: '127.0.0.1', port }))));
    expect(Math.max(...silent)).toBeLessThan(5_000);
    const plain = await start('127.0.0.1:0', { apiLimits: { headersTimeoutMs: 400, requestTimeoutMs: 600 } });
    const plainPort = Number(new URL(plain.apiURL).port);
    // slowloris: a request line and one header, then nothing
    const slow = tcpConnect({ host: '127.0.0.1', port: plainPort }, () => slow.write('GET /healthz/ready HTTP/1.1\r\nhost: x\r\n'));
    const idle = tcpConnect({ host: '127.0.0.1', port: plainPort });
    const [slowMs, idleMs] = await Promise.all([closedAfter(slow), closedAfter(idle)]);
    expect(Math.max(slowMs, idleMs)).toBeLessThan(5_000);
    const tlsText = await cp.registry.metrics();
    expect(tlsText).toMatch(/nodemesh_listener_timeouts_total\{listener="config-api",kind="handshake"\} 20/);
    const plainText = await plain.registry.metrics();
    expect(plainText).toMatch(/nodemesh_listener_timeouts_total\{listener="config-api",kind="request"\} [12]/);
  });
});
