// GET /v1/explain served by a real control plane with explain/ injected, as `nodemesh control`
// wires it: behind the bearer token, answering from the store's current state, refusing bad
// questions with 400/404, and 404 from a control plane started without an explainer.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../common/log';
import { ApiClient, ApiError } from '../control/api/client';
import { ControlPlane } from '../control/control-plane';
import { demoMesh, IPS, policy } from '../test/explain/fixtures';
import { createExplainer } from './explainer';
import type { Explanation } from './model';

let dir: string;
let cp: ControlPlane;
let bare: ControlPlane;
let client: ApiClient;

async function apiError(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error('expected the API to refuse the request');
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nm-explain-api-'));
  const logger = createLogger('explain-test', 'silent');
  cp = new ControlPlane({ dataDir: join(dir, 'a'), listen: '127.0.0.1:0', logger, explain: createExplainer() });
  bare = new ControlPlane({ dataDir: join(dir, 'b'), listen: '127.0.0.1:0', logger });
  await cp.start();
  await bare.start();
  client = new ApiClient({ server: cp.apiURL, token: readFileSync(join(dir, 'a', 'token'), 'utf8').trim() });
  await client.apply(demoMesh());
});

afterAll(async () => {
  await cp?.stop();
  await bare?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('GET /v1/explain', () => {
  it('answers from the current state, and follows a policy change at once', async () => {
    const before = await client.explain<Explanation>({ from: 'demo/frontend', to: 'tcp-echo.demo', port: 9000 });
    expect(before.kind).toBe('Explanation');
    expect(before.verdict).toMatchObject({ kind: 'allowed', allowed: true });
    expect(before.query).toEqual({ from: 'demo/frontend', to: 'tcp-echo.demo', port: 9000, method: 'GET', path: '/' });
    await client.apply([
      policy('tcp-echo-deny-frontend', {
        selector: { matchLabels: { app: 'tcp-echo' } },
        action: 'DENY',
        rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/frontend'] } }] }],
      }),
    ]);
    const after = await client.explain<Explanation>({ from: 'demo/frontend', to: 'tcp-echo.demo:9000' });
    expect(after.revision).toBeGreaterThan(before.revision);
    expect(after.verdict).toMatchObject({ kind: 'denied', by: 'node proxy node1: demo/tcp-echo-deny-frontend' });
    const l7 = await client.explain<Explanation>({ from: 'demo/frontend', to: `${IPS.backendVip}:80`, method: 'delete', path: '/x' });
    expect(l7.query.method).toBe('DELETE');
    expect(l7.verdict.by).toBe('waypoint demo/waypoint: demo/backend-deny-delete rule 1');
  });

  it('needs the bearer token like the rest of /v1', async () => {
    const res = await fetch(`${cp.apiURL}/v1/explain?from=demo/frontend&to=tcp-echo.demo:9000`);
    expect(res.status).toBe(401);
  });

  it('refuses malformed questions with 400 and unknown names with 404, saying what to write', async () => {
    const noTo = await apiError(client.explain({ from: 'demo/frontend', to: '' }));
    expect(noTo.status).toBe(400);
    expect(noTo.message).toContain('explain needs ?to=');
    const badPort = await apiError(client.explain({ from: 'demo/frontend', to: 'tcp-echo.demo', port: 70000 }));
    expect(badPort.status).toBe(400);
    const unknown = await apiError(client.explain({ from: 'demo/ghost', to: 'tcp-echo.demo:9000' }));
    expect(unknown.status).toBe(404);
    expect(unknown.message).toContain('no Workload demo/ghost');
  });

  it('is 404 on a control plane started without explain/, and says so', async () => {
    const c = new ApiClient({ server: bare.apiURL, token: readFileSync(join(dir, 'b', 'token'), 'utf8').trim() });
    const err = await apiError(c.explain({ from: 'demo/frontend', to: 'tcp-echo.demo:9000' }));
    expect(err.status).toBe(404);
    expect(err.message).toContain('does not serve /v1/explain');
  });
});
