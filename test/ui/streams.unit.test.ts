// The /ui page's SSE stream is bounded: a session (or the token) may hold UI_STREAM_LIMITS.perClient
// streams (then 429 with the reason and Retry-After), the control plane UI_STREAM_LIMITS.total
// (then 503); a closed page frees its slot.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UI_STREAM_LIMITS } from '../../control/ui/component';
import { login, startUiControlPlane, type UiFixture } from './fixture';

let f: UiFixture;
beforeAll(async () => {
  f = await startUiControlPlane({ workloads: 10 });
}, 60_000);
afterAll(async () => {
  await f?.stop();
});

describe('/ui/api/events limits', () => {
  const open: AbortController[] = [];
  afterAll(() => {
    for (const ac of open) ac.abort();
  });
  const events = async (headers: Record<string, string>): Promise<Response> => {
    const ac = new AbortController();
    const res = await fetch(`${f.url}/ui/api/events`, { headers: { accept: 'text/event-stream', ...headers }, signal: ac.signal });
    if (res.status === 200) open.push(ac);
    return res;
  };

  it('refuses a session its fifth stream with 429 and a reason, and takes it again once one closes', async () => {
    const cookie = await login(f);
    for (let i = 0; i < UI_STREAM_LIMITS.perClient; i++) expect((await events({ cookie })).status).toBe(200);
    const refused = await events({ cookie });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(await refused.text()).toMatch(/at most 4\); close one/);
    // another session is not affected
    expect((await events({ cookie: await login(f) })).status).toBe(200);
    // closing a page frees the slot (the server sees the close asynchronously)
    open.shift()!.abort();
    let again = 0;
    for (let t = 0; t < 50 && again !== 200; t++) {
      const r = await events({ cookie });
      again = r.status;
      if (again !== 200) await new Promise((r) => setTimeout(r, 50));
    }
    expect(again).toBe(200);
  });

  it(`refuses any stream beyond ${UI_STREAM_LIMITS.total} in all with 503 and a reason`, async () => {
    // fill the rest with new sessions, perClient each
    while (open.length < UI_STREAM_LIMITS.total) {
      const cookie = await login(f);
      for (let i = 0; i < UI_STREAM_LIMITS.perClient && open.length < UI_STREAM_LIMITS.total; i++) expect((await events({ cookie })).status).toBe(200);
    }
    const refused = await events({ cookie: await login(f) });
    expect(refused.status).toBe(503);
    expect(await refused.text()).toMatch(/serves 32 open pages \(at most 32\); close one/);
    // the token is one client too
    const byToken = await events({ authorization: `Bearer ${f.token}` });
    expect(byToken.status).toBe(503);
  }, 30_000);
});
