// The /ui page against a real lab ('nmui', built by `nodemesh lab up` with the demo and its traffic),
// opened the way a user does — `nodemesh dashboard --lab nmui` (a local forwarder and a one-time
// login link) — in headless Chromium: the graph shows the demo's edges (frontend -> tcp-echo over
// mTLS, frontend -> backend through the waypoint), the outside client's edge into STRICT is drawn
// as denied and clicking it names PeerAuthentication demo/default, and a policy applied with
// `nodemesh apply` reaches the open page over SSE within seconds (no reload), then turns the
// frontend -> tcp-echo edge denied once traffic meets it. Screenshots in test-artifacts/ui/.
// Cost: lab up (~1-4 min, most of it the lab) plus ~20 s of browser and polls.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// puppeteer-core is an ES module: its types come in through an import type with resolution-mode.
type Page = import('puppeteer-core', { with: { 'resolution-mode': 'import' }}).Page;
import { afterAll, beforeAll, expect, it } from 'vitest';
import { labDown } from '../../lab/down';
import { assignRoles, service, type DemoRole } from '../../lab/mesh/demo';
import { runClientIn } from '../../lab/mesh/traffic';
import { meshDown } from '../../lab/mesh/up';
import { loadLabState, tryLoadLabState, type LabTopology } from '../../lab/state';
import { artifactPath, browserMissing, launchBrowser, type LaunchedBrowser } from '../support/browser';
import { privilegedDescribe } from '../support/privileged';
import { scaled } from '../support/speed';
import { cli, dist } from '../lab/support';

const LAB = 'nmui';

async function cleanLab(): Promise<void> {
  const old = tryLoadLabState(LAB);
  if (old) await meshDown(old, () => undefined).catch(() => undefined);
  await labDown(LAB);
}

interface PageEdge {
  id: string;
  source: string;
  destination: string;
  deniedState: string;
  mtlsRatio: number;
  waypoints: string[];
  connections: number;
}
const edgesOf = (page: Page): Promise<PageEdge[]> =>
  page.evaluate(() => (globalThis as unknown as { nodemesh: { model?: { edges: PageEdge[] } } }).nodemesh.model?.edges ?? []);

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

privilegedDescribe('lab', 'the /ui page in Chromium against the lab (lab nmui)', () => {
  let topo: LabTopology;
  let dashboard: ChildProcess | undefined;
  let b: LaunchedBrowser | undefined;
  let page: Page;
  let frontend: DemoRole;

  beforeAll(async () => {
    const missing = browserMissing();
    if (missing) throw new Error(missing);
    await cleanLab();
    const up = await cli(['lab', 'up', '--lab', LAB], scaled(150_000));
    expect(up.code, up.stdout + up.stderr).toBe(0);
    topo = loadLabState(LAB);
    frontend = assignRoles(topo).find((r) => r.role === 'frontend') as DemoRole;
    // The browser first, as a user's is already running: the login link lasts 60 s, and Chromium's
    // start under TCG (a 6.12 or 5.10 VM) took longer than that after the link was printed, so the
    // page got "this login link was used already or has expired" and never drew a graph.
    b = await launchBrowser();
    page = await b.browser.newPage();
    // puppeteer's own default for goto and the waits without a timeout is a fixed 30 s: a
    // starved VM's first page load outlasted it (5.10 under TCG)
    page.setDefaultTimeout(scaled(30_000));
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(`page error: ${(e as Error).message}`));
    page.on('requestfailed', (r) => pageErrors.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
    // `nodemesh dashboard`, as a user runs it (no browser here: it prints the link).
    dashboard = spawn(process.execPath, [dist('cli/main.js'), 'dashboard', '--lab', LAB, '--no-browser'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nodemesh dashboard printed no link: ${out}`)), scaled(20_000));
      dashboard!.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        const m = /dashboard: (http:\/\/127\.0\.0\.1:\d+\/ui\/login\?code=[\w-]+)/.exec(out);
        if (m) clearTimeout(timer), resolve(m[1]!);
      });
      dashboard!.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
      dashboard!.on('exit', (code) => reject(new Error(`nodemesh dashboard exited (${code}): ${out}`)));
    });
    const printed = Date.now();
    const response = await page.goto(url);
    // the login answers with the page (after its redirect), or says why not (an expired link: 401)
    expect(response?.status(), `the login link, opened ${Date.now() - printed} ms after it was printed: ${await response?.text()}`).toBe(200);
    try {
      await page.waitForFunction(() => ((globalThis as unknown as { nodemesh?: { rendered: number } }).nodemesh?.rendered ?? 0) > 0, {
        timeout: scaled(20_000),
      });
    } catch (err) {
      const shown = await page
        .evaluate(() => (globalThis as unknown as { document: { body?: { innerText: string } } }).document.body?.innerText.slice(0, 500))
        .catch(() => '(unreadable)');
      throw new Error(`the page drew no graph: ${(err as Error).message}; it shows: ${shown}; ${pageErrors.join('; ') || 'no page error or failed request'}`);
    }
  }, scaled(240_000));

  afterAll(async () => {
    await b?.close();
    if (dashboard?.pid !== undefined && dashboard.exitCode === null) dashboard.kill('SIGTERM');
    const down = await cli(['lab', 'down', '--lab', LAB], 60_000).catch(() => undefined);
    if (down?.code !== 0) await cleanLab();
  }, scaled(90_000));

  it('shows the demo’s edges after its traffic: frontend -> tcp-echo over mTLS, frontend -> backend through the waypoint', async () => {
    const fe = `wl:demo/${frontend.workload}`;
    const edges = await waitFor(
      'the demo edges on the page',
      async () => {
        const e = await edgesOf(page);
        return e.some((x) => x.source === fe && x.destination === 'svc:demo/tcp-echo') && e.some((x) => x.waypoints.includes('demo/waypoint')) ? e : undefined;
      },
      scaled(20_000),
    );
    const echo = edges.find((x) => x.source === fe && x.destination === 'svc:demo/tcp-echo')!;
    expect(echo).toMatchObject({ deniedState: 'none', mtlsRatio: 1 });
    expect(edges.filter((x) => x.source === fe && x.waypoints.includes('demo/waypoint')).map((x) => x.destination)).toEqual(
      expect.arrayContaining(['svc:demo/backend', 'svc:demo/backend-v1']),
    );
    expect(await page.$(`[data-edge="${echo.id}"]`)).not.toBeNull();
    await page.screenshot({ path: artifactPath('lab-graph.png') });
  });

  it('draws the outside client’s edge into STRICT as denied; clicking it shows PeerAuthentication demo/default', async () => {
    const intoFrontend = (x: { source: string; destination: string }): boolean =>
      x.source.startsWith('wl:outside/') && x.destination === `wl:demo/${frontend.workload}`;
    // the page learns the denials from the node proxies' gathered records, which may arrive after the demo's other edges
    const edges = await waitFor(
      'the outside client’s edge on the page',
      async () => {
        const e = await edgesOf(page);
        return e.some(intoFrontend) ? e : undefined;
      },
      scaled(20_000),
    );
    const denied = edges.find(intoFrontend);
    expect(denied, JSON.stringify(edges.map((x) => x.id))).toMatchObject({ deniedState: 'all' });
    expect(await page.$eval(`[data-edge="${denied!.id}"]`, (g) => g.getAttribute('data-denied'))).toBe('all');
    await page.$eval(`[data-edge="${denied!.id}"] .edge-hit`, (el) => el.dispatchEvent(new Event('click', { bubbles: true })));
    await page.waitForSelector('#denied-by', { timeout: scaled(10_000) });
    expect(await page.$eval('#denied-by', (e) => e.textContent)).toContain('demo/default');
    const panel = await page.$eval('#panel-body', (e) => e.textContent ?? '');
    expect(panel).toContain('PeerAuthentication demo/default');
    expect(panel).toMatch(/requires mutual TLS \(STRICT\)/);
    await page.screenshot({ path: artifactPath('lab-denied-edge.png') });
  });

  it(
    'a policy applied with nodemesh apply reaches the page over SSE within seconds, and the edge it denies turns denied once traffic meets it',
    async () => {
      const navigations: string[] = [];
      page.on('framenavigated', (f) => navigations.push(f.url()));
      const dir = mkdtempSync(join(tmpdir(), 'nm-ui-lab-'));
      const file = join(dir, 'deny.yaml');
      writeFileSync(
        file,
        `apiVersion: security.nodemesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: ui-deny-frontend-echo, namespace: demo}
spec:
  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/demo/sa/frontend"]}}]
    to: [{operation: {ports: ["${service('tcp-echo').targetPort}"]}}]
`,
      );
      const t0 = Date.now();
      const applied = await cli(['apply', '-f', file, '--lab', LAB]);
      expect(applied.code, applied.stderr).toBe(0);
      await page.waitForSelector('#policies [data-policy="demo/ui-deny-frontend-echo"]', { timeout: scaled(5_000) });
      const seenMs = Date.now() - t0;
      expect(seenMs).toBeLessThan(scaled(5_000));
      // Traffic meets the policy: the frontend -> tcp-echo edge gets denials at the next poll.
      const echo = `${service('tcp-echo').vip}:${service('tcp-echo').port}`;
      await runClientIn(topo, frontend.pod.name, echo, 'tcp', { connections: 3, concurrency: 1, size: 64, timeoutMs: 10_000 });
      const fe = `wl:demo/${frontend.workload}`;
      await waitFor(
        'the frontend -> tcp-echo edge to show denials',
        async () =>
          (await edgesOf(page)).some((x) => x.source === fe && /^(svc:demo\/tcp-echo|wl:demo\/tcp-echo-)/.test(x.destination) && x.deniedState !== 'none')
            ? true
            : undefined,
        scaled(20_000),
      );
      expect(navigations).toEqual([]);
      await page.screenshot({ path: artifactPath('lab-after-policy.png') });
      process.stderr.write(`ui lab: the applied policy was on the page ${seenMs} ms after 'nodemesh apply' started\n`);
    },
    scaled(60_000),
  );
});
