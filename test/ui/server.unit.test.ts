// The /ui page's server side on a real control plane (loopback): the login (one-time code from
// the API token, then an HttpOnly session cookie), the views with a 1,000-workload store, and the
// SSE stream that carries a policy applied to the store.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { login, startUiControlPlane, type UiFixture } from './fixture';

let f: UiFixture;
beforeAll(async () => {
  f = await startUiControlPlane({ workloads: 1000 });
}, 60_000);
afterAll(async () => {
  await f?.stop();
});

describe('the /ui page on the config API', () => {
  it('needs a session or the token: 401 without, a one-time code needs the token, the cookie is HttpOnly and SameSite=Strict', async () => {
    expect((await fetch(`${f.url}/ui/`)).status).toBe(401);
    expect((await fetch(`${f.url}/ui/api/overview`)).status).toBe(401);
    expect((await fetch(`${f.url}/ui/login-code`, { method: 'POST' })).status).toBe(401);
    const { code } = (await (await fetch(`${f.url}/ui/login-code`, { method: 'POST', headers: { authorization: `Bearer ${f.token}` } })).json()) as {
      code: string;
    };
    const first = await fetch(`${f.url}/ui/login?code=${code}`, { redirect: 'manual' });
    expect(first.status).toBe(303);
    expect(first.headers.get('location')).toBe('/ui/');
    const cookie = first.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/^nm_ui=[\w-]{40,}; Path=\/ui; HttpOnly; SameSite=Strict/);
    expect(cookie).not.toContain(f.token);
    // Single use.
    expect((await fetch(`${f.url}/ui/login?code=${code}`, { redirect: 'manual' })).status).toBe(401);
    const page = await fetch(`${f.url}/ui/`, { headers: { cookie: cookie.split(';')[0]! } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await page.text()).toContain('/ui/static/app.js');
    // The cookie opens the page, never the config API.
    expect((await fetch(`${f.url}/v1/workloads`, { headers: { cookie: cookie.split(';')[0]! } })).status).toBe(401);
    expect((await fetch(`${f.url}/ui/static/../token`, { headers: { cookie: cookie.split(';')[0]! } })).status).toBe(404);
  });

  it('overview of 1,000 workloads: grouped by namespace and node, built in well under a second, about 150 bytes a workload', async () => {
    const cookie = await login(f);
    const t0 = performance.now();
    const res = await fetch(`${f.url}/ui/api/overview`, { headers: { cookie } });
    const text = await res.text();
    const ms = performance.now() - t0;
    const o = JSON.parse(text);
    expect(o.workloads).toHaveLength(1000);
    expect(o.namespaces.filter((n: { enrolled: boolean }) => n.enrolled)).toHaveLength(10);
    expect(o.nodes).toEqual(['node1', 'node2', 'node3', 'node4', 'node5']);
    expect(o.services).toHaveLength(10);
    expect(o.workloads[0]).toMatchObject({ id: 'wl:ns0/w0', node: 'node1', enrolled: true });
    expect(text.length / 1000).toBeLessThan(300);
    expect(ms).toBeLessThan(2000);
  });

  it('a workload: identity, enrolment, capture status on its node (no node proxy connected here) and the policies that select it', async () => {
    const cookie = await login(f);
    type Detail = { workload: unknown; capture: unknown; certificate: unknown; policies: { name: string; scope: string }[] };
    const d = (await (await fetch(`${f.url}/ui/api/node?id=${encodeURIComponent('wl:ns0/w0')}`, { headers: { cookie } })).json()) as Detail;
    expect(d.workload).toMatchObject({ identity: 'spiffe://cluster.local/ns/ns0/sa/api', node: 'node1', enrolled: true });
    expect(d.capture).toEqual({ nodeProxy: 'node1', connected: false });
    expect(d.certificate).toMatchObject({
      identity: 'spiffe://cluster.local/ns/ns0/sa/api',
      note: expect.stringMatching(/no certificate .* issued to node node1/),
    });
    // What the CA notes when it issues (control/ca/service.ts) shows with its expiry.
    const notAfter = new Date(Date.now() + 24 * 3600_000).toISOString();
    f.cp.issued.record({
      spiffeId: 'spiffe://cluster.local/ns/ns0/sa/api',
      node: 'node1',
      serialNumber: 'ab12',
      notBefore: new Date().toISOString(),
      notAfter,
      issuedAt: new Date().toISOString(),
    });
    const again = (await (await fetch(`${f.url}/ui/api/node?id=${encodeURIComponent('wl:ns0/w0')}`, { headers: { cookie } })).json()) as Detail;
    expect(again.certificate).toMatchObject({ serialNumber: 'ab12', notAfter, expired: false, expiresInSeconds: expect.any(Number) });
    expect(d.policies.map((p) => `${p.name}:${p.scope}`).sort()).toEqual(['api-allow:selector', 'default:namespace-wide']);
    const web = (await (await fetch(`${f.url}/ui/api/node?id=${encodeURIComponent('wl:ns0/w10')}`, { headers: { cookie } })).json()) as Detail;
    expect(web.policies.map((p) => p.name)).toEqual(['default']);
  });

  it('streams a new overview over SSE when a policy is applied (no reload)', async () => {
    const cookie = await login(f);
    const ac = new AbortController();
    const res = await fetch(`${f.url}/ui/api/events`, { headers: { cookie, accept: 'text/event-stream' }, signal: ac.signal });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const reader = res.body!.getReader();
    const events: { policies: { name: string }[] }[] = [];
    let buf = '';
    const next = async (): Promise<void> => {
      for (;;) {
        const i = buf.indexOf('\n\n');
        if (i >= 0) {
          const ev = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = ev.split('\n').find((l) => l.startsWith('data: '));
          if (data) {
            events.push(JSON.parse(data.slice(6)));
            return;
          }
          continue;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error('the stream ended');
        buf += Buffer.from(value).toString('utf8');
      }
    };
    await next();
    expect(events[0]!.policies.some((p) => p.name === 'deny-late')).toBe(false);
    const t0 = Date.now();
    await f.cp.store.applyAll([
      {
        apiVersion: 'security.nodemesh.io/v1alpha1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'deny-late', namespace: 'ns1' },
        spec: { action: 'DENY', rules: [{}] },
      },
    ]);
    await next();
    expect(events[1]!.policies.some((p) => p.name === 'deny-late')).toBe(true);
    expect(Date.now() - t0).toBeLessThan(3000);
    ac.abort();
  });
});
