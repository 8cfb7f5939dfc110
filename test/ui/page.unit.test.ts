// The page in a real browser (headless Chromium, test/support/browser.ts) against a control plane
// with 1,000 workloads and edges observed from a real node proxy metrics endpoint: it renders the
// whole graph in reasonable time, a denied edge is drawn as denied, clicking it shows the policy
// that denied it, and a policy applied to the store reaches the open page over SSE (no reload).
// About 3-5 s on an idle machine (chromium's start is most of it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectedClient } from '../../control/observe';
import { NodeProxyTelemetry, startMetricsServer, type ConnectionRecord, type MetricsServer } from '../../node-proxy/telemetry';
import { artifactPath, browserMissing, launchBrowser, type LaunchedBrowser } from '../support/browser';
import { quiet, startUiControlPlane, type UiFixture } from './fixture';
import { scaled } from '../support/speed';

const missing = browserMissing();
if (missing && process.env.CI === 'true') throw new Error(`the browser tests cannot run: ${missing}`);

const wl = (i: number) => ({ name: `w${i}`, namespace: `ns${i % 10}`, canonicalName: 'x', canonicalRevision: 'v1' });
const id = (i: number) => `spiffe://cluster.local/ns/ns${i % 10}/sa/${i % 3 === 0 ? 'api' : 'web'}`;

let f: UiFixture;
let m: MetricsServer;
let b: LaunchedBrowser | undefined;

beforeAll(async () => {
  const t = new NodeProxyTelemetry({ accessLog: quiet() });
  // 300 allowed edges over mTLS and one denied edge (plaintext into STRICT).
  for (let i = 0; i < 300; i++) {
    const r: ConnectionRecord = {
      reporter: 'destination',
      source: { workload: wl(i + 1), identity: id(i + 1), address: '127.0.0.1', port: 1 },
      destination: { workload: wl(i * 3), identity: id(i * 3), address: '127.0.0.1', port: 8080 },
      mtls: true,
    };
    t.open(r).close({ requestBytes: 10, responseBytes: 20 });
  }
  t.denied(
    {
      reporter: 'destination',
      source: { workload: wl(7), address: '127.0.0.1', port: 1 },
      destination: { workload: wl(0), identity: id(0), address: '127.0.0.1', port: 8080 },
      mtls: false,
    },
    { policy: 'ns0/default', reason: 'PeerAuthentication ns0/default requires mutual TLS (STRICT)' },
  );
  m = await startMetricsServer(t.registry, { host: '127.0.0.1', port: 0, recent: t.recent });
  const clients = (): ConnectedClient[] => [
    { api: 'delta', nodeId: 'node1', peer: '127.0.0.1:1', view: 'proxyless', types: { 'nodemesh.workload.v1.Address': {} } },
  ];
  f = await startUiControlPlane({ workloads: 1000, clients, env: { NODEMESH_OBSERVE_INTERVAL_MS: '1000', NODEMESH_OBSERVE_PORT: String(m.port) } });
}, 60_000);

afterAll(async () => {
  await b?.close();
  await f?.stop();
  await m?.close();
});

describe.skipIf(missing !== undefined && process.env.CI !== 'true')('the page in Chromium with 1,000 workloads', () => {
  it('renders the graph, marks the denied edge, shows its policy on a click, and follows a policy applied to the store', async () => {
    b = await launchBrowser();
    const page = await b.browser.newPage();
    const code = (await (await fetch(`${f.url}/ui/login-code`, { method: 'POST', headers: { authorization: `Bearer ${f.token}` } })).json()) as {
      code: string;
    };
    await until(async () => (f.cp.component('observe') as { observer?: { edges(): unknown[] } }).observer?.edges().length === 301);
    const t0 = Date.now();
    await page.goto(`${f.url}/ui/login?code=${code.code}`);
    await page.waitForFunction(() => (globalThis as unknown as { nodemesh: { rendered: number } }).nodemesh.rendered > 0, { timeout: scaled(20_000) });
    const loadMs = Date.now() - t0;
    const renderMs = await page.evaluate(() => (globalThis as unknown as { nodemesh: { renderMs: number } }).nodemesh.renderMs);
    expect(await page.$$eval('circle.wl', (c) => c.length)).toBe(1000);
    expect(await page.$$eval('[data-edge]', (e) => e.length)).toBe(301);
    // limits for an unloaded machine, scaled by its measured speed (15.6 s at load 20 beside two VMs)
    expect(loadMs).toBeLessThan(scaled(10_000));
    expect(renderMs).toBeLessThan(scaled(2_000));
    console.log(`page with 1,000 workloads and 301 edges: loaded and drawn in ${loadMs} ms (one render ${Math.round(renderMs)} ms)`);

    const denied = await page.$$eval('[data-denied="all"]', (e) => e.map((x) => x.getAttribute('data-edge')));
    expect(denied).toEqual(['wl:ns7/w7->wl:ns0/w0']);
    await page.$eval('[data-denied="all"] .edge-hit', (el) => el.dispatchEvent(new Event('click', { bubbles: true })));
    // The panel asks the control plane for the edge (/ui/api/edge, with explain): 20 s, as the
    // load above, for a machine running the other unit files beside this one; a panel that shows
    // an error instead says so.
    const clicked = Date.now();
    await page.waitForSelector('#denied-by', { timeout: 20_000 }).catch(async (err: Error) => {
      const panel = await page.$eval('#panel-body', (e) => e.textContent).catch(() => '(no panel)');
      throw new Error(`no #denied-by ${Date.now() - clicked} ms after the click (${err.message}); the panel shows: ${panel}`);
    });
    console.log(`the denied edge's panel showed its policy ${Date.now() - clicked} ms after the click`);
    expect(await page.$eval('#denied-by', (e) => e.textContent)).toContain('ns0/default');
    expect(await page.$eval('#panel-body', (e) => e.textContent)).toContain('PeerAuthentication ns0/default');
    await page.screenshot({ path: artifactPath('page-1000-workloads.png') });

    // A policy applied now shows up without a reload (SSE), in the list and in the open panel.
    const navigations: string[] = [];
    page.on('framenavigated', (fr) => navigations.push(fr.url()));
    await f.cp.store.applyAll([
      {
        apiVersion: 'security.nodemesh.io/v1alpha1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'deny-w7', namespace: 'ns0' },
        spec: { action: 'DENY', rules: [{}] },
      },
    ]);
    await page.waitForSelector('#policies [data-policy="ns0/deny-w7"]', { timeout: 5_000 });
    await page.waitForSelector('#panel-body [data-policy="ns0/deny-w7"]', { timeout: 5_000 });
    expect(navigations).toEqual([]);
  }, 60_000);
});

async function until(cond: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}
