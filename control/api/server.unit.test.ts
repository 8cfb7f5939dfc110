import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log';
import { ControlPlane } from '../control-plane';
import { resolveKind, type KindInfo } from '../resources/kinds';
import { FileStore } from '../store/file-store';
import { ApiClient, ApiError, type WatchLine } from './client';

const kind = (k: string): KindInfo => resolveKind(k) as KindInfo;

let dir: string;
let cp: ControlPlane;
let client: ApiClient;
let token: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nm-api-'));
  cp = new ControlPlane({ dataDir: dir, listen: '127.0.0.1:0', logger: createLogger('control-test', 'silent') });
  await cp.start();
  token = readFileSync(join(dir, 'token'), 'utf8').trim();
  client = new ApiClient({ server: cp.apiURL, token });
});
afterAll(async () => {
  await cp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function rawFetch(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(cp.apiURL + path, init);
}

/** A watch with a raw query string, through the client's error mapping. */
function rawFetchAt(base: string, path: string, c: ApiClient): Promise<unknown> {
  const revision = new URL(base + path).searchParams.get('revision') as unknown as number;
  return c.watch({ revision }, () => undefined);
}

async function apiError(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error('expected the API to refuse the request');
}

const shopYaml = `
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    nodemesh.io/dataplane-mode: ambient
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  clusterIP: 10.96.0.20
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
---
apiVersion: nodemesh.io/v1alpha1
kind: Workload
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec: {node: nm-node1, addresses: [10.200.1.10], serviceAccount: web}
`;

describe('config API', () => {
  it('generates a 0600 token on first start and refuses requests without it', async () => {
    expect(statSync(join(dir, 'token')).mode & 0o777).toBe(0o600);
    expect(token.length).toBeGreaterThanOrEqual(40);
    const none = await rawFetch('/v1/services');
    expect(none.status).toBe(401);
    expect(((await none.json()) as { message: string }).message).toMatch(/bearer token/);
    const wrong = await rawFetch('/v1/services', { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    const bad = new ApiClient({ server: cp.apiURL, token: 'x'.repeat(token.length) });
    expect((await apiError(bad.apply(shopYaml))).status).toBe(401);
    expect(cp.store.snapshot().get('Namespace', 'shop')).toBeUndefined();
  });

  it('serves readiness and metrics without a token', async () => {
    const ready = await rawFetch('/healthz/ready');
    expect(ready.status).toBe(200);
    const metrics = await (await rawFetch('/metrics')).text();
    expect(metrics).toContain('nodemesh_config_revision');
  });

  it('applies multi-document YAML, then gets and lists', async () => {
    const res = await client.apply(shopYaml);
    expect(res.results.map((r) => `${r.kind}/${r.name} ${r.action}`)).toEqual(['Namespace/shop created', 'Service/web created', 'Workload/web-1 created']);
    const svc = await client.get<{ spec: { clusterIP: string } }>(kind('svc'), 'web', 'shop');
    expect(svc.spec.clusterIP).toBe('10.96.0.20');
    const list = await client.list(kind('workloads'), 'shop');
    expect(list.items.map((w) => w.metadata.name)).toEqual(['web-1']);
    expect(Number(list.metadata.resourceVersion)).toBe(res.revision);
    expect((await client.list(kind('workloads'), 'shop', 'app=other')).items).toEqual([]);
    expect((await client.list(kind('namespaces'))).items.map((n) => n.metadata.name)).toEqual(['default', 'shop']);
    const again = await client.apply(shopYaml);
    expect(again.results.every((r) => r.action === 'unchanged')).toBe(true);
    expect(again.revision).toBe(res.revision);
  });

  it('accepts JSON and refuses a bad batch whole with 400 naming the field', async () => {
    const before = cp.store.revision;
    const docs = [
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'api', namespace: 'shop' }, spec: { ports: [{ port: 81 }] } },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'bad', namespace: 'shop' },
        spec: {
          ports: [
            { name: 'a', port: 80 },
            { name: 'b', port: 81, targetPort: -1 },
          ],
        },
      },
    ];
    const err = await apiError(client.apply(docs));
    expect(err.status).toBe(400);
    expect(err.reason).toBe('Invalid');
    expect(err.message).toContain('Service shop/bad is invalid: spec.ports[1].targetPort');
    expect(err.body?.details?.errors[0]).toEqual({ resource: 'Service shop/bad', issues: [expect.objectContaining({ path: 'spec.ports[1].targetPort' })] });
    expect(cp.store.revision).toBe(before);
    expect(cp.store.snapshot().get('Service', 'api', 'shop')).toBeUndefined();
    const yamlErr = await apiError(client.apply('kind: [unclosed'));
    expect(yamlErr.status).toBe(400);
    expect(yamlErr.message).toMatch(/not valid YAML/);
    expect((await client.apply([docs[0]])).results[0].action).toBe('created');
  });

  it('replaces with PUT honouring resourceVersion, and deletes', async () => {
    const svc = await client.get<{ metadata: { name: string; namespace: string; resourceVersion: string }; spec: unknown }>(kind('svc'), 'api', 'shop');
    const body = { apiVersion: 'v1', kind: 'Service', metadata: { ...svc.metadata }, spec: { ports: [{ port: 82 }] } };
    await client.put(kind('svc'), body);
    const conflict = await apiError(client.put(kind('svc'), { ...body, spec: { ports: [{ port: 83 }] } }));
    expect(conflict.status).toBe(409);
    expect(conflict.message).toMatch(/was modified/);
    const gone = await apiError(client.delete(kind('svc'), 'api', 'shop', svc.metadata.resourceVersion));
    expect(gone.status).toBe(409);
    await client.delete(kind('svc'), 'api', 'shop');
    const missing = await apiError(client.get(kind('svc'), 'api', 'shop'));
    expect(missing.status).toBe(404);
    expect(missing.message).toBe('Service shop/api not found');
    expect((await apiError(client.delete(kind('svc'), 'api', 'shop'))).status).toBe(404);
  });

  it('watches from a revision with JSON lines, and answers 410 for compacted history', async () => {
    const from = cp.store.revision;
    const lines: WatchLine[] = [];
    let notify = (): void => undefined;
    const stream = await client.watch({ revision: from, kind: 'Service' }, (l) => {
      lines.push(l);
      notify();
    });
    const wait = (n: number) =>
      new Promise<void>((resolve) => {
        notify = () => lines.length >= n && resolve();
        notify();
      });
    await client.apply([
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'w1', namespace: 'shop' }, spec: { ports: [{ port: 90 }] } },
      { apiVersion: 'nodemesh.io/v1alpha1', kind: 'Workload', metadata: { name: 'w1', namespace: 'shop' }, spec: { node: 'n', addresses: ['10.200.1.99'] } },
    ]);
    await client.delete(kind('svc'), 'w1', 'shop');
    await wait(2);
    stream.close();
    await stream.done;
    expect(lines.map((l) => `${l.type} ${l.object?.kind}/${l.object?.metadata.name}@${l.revision}`)).toEqual([
      `ADDED Service/w1@${from + 1}`,
      `DELETED Service/w1@${from + 2}`,
    ]);
    // Replay: a new watch from the same revision sees the same two changes first.
    const replay: WatchLine[] = [];
    const again = await client.watch({ revision: from }, (l) => replay.push(l));
    await new Promise((r) => setTimeout(r, 100));
    again.close();
    expect(replay.map((l) => l.type)).toEqual(['ADDED', 'ADDED', 'DELETED']);
    const sse = await rawFetch(`/v1/watch?revision=${from}`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
    expect(sse.headers.get('content-type')).toBe('text/event-stream');
    const reader = (sse.body as ReadableStream<Uint8Array>).getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toMatch(new RegExp(`^id: ${from + 1}\nevent: ADDED\ndata: \\{`));
    await reader.cancel();
    // An SSE client reconnecting with Last-Event-ID resumes after that revision.
    const resumed = await rawFetch('/v1/watch', {
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', 'last-event-id': String(from + 1) },
    });
    const r2 = (resumed.body as ReadableStream<Uint8Array>).getReader();
    expect(new TextDecoder().decode((await r2.read()).value)).toMatch(new RegExp(`^id: ${from + 2}\nevent: DELETED\n`));
    await r2.cancel();
  });

  it('answers 410 Expired for a compacted revision, 400 for a malformed one', async () => {
    const smallDir = mkdtempSync(join(tmpdir(), 'nm-api-'));
    const store = await FileStore.open({ dataDir: smallDir, historyLimit: 2 });
    const small = new ControlPlane({ dataDir: smallDir, store, listen: '127.0.0.1:0', logger: createLogger('t', 'silent') });
    await small.start();
    try {
      const c = new ApiClient({ server: small.apiURL, token: readFileSync(small.tokenFile, 'utf8').trim() });
      for (const n of ['a', 'b', 'c']) await c.apply([{ apiVersion: 'v1', kind: 'Service', metadata: { name: n }, spec: { ports: [{ port: 80 }] } }]);
      const expired = await apiError(c.watch({ revision: 1 }, () => undefined));
      expect(expired.status).toBe(410);
      expect(expired.reason).toBe('Expired');
      expect(expired.message).toMatch(/revision 1 was compacted.*list again/);
      const ok = await c.watch({ revision: 2 }, () => undefined);
      ok.close();
      const bad = await apiError(rawFetchAt(small.apiURL, '/v1/watch?revision=abc', c));
      expect(bad.status).toBe(400);
    } finally {
      await small.stop();
      await store.close();
      rmSync(smallDir, { recursive: true, force: true });
    }
  });

  it('gives 404 with the known kinds for an unknown path', async () => {
    const err = await apiError(client.get({ ...kind('svc'), plural: 'pods', namespaced: true }, 'x', 'default'));
    expect(err.status).toBe(404);
    expect(err.message).toMatch(/unknown resource "pods".*services/);
  });

  it('refuses hostile documents with 400 and the reason, and keeps serving after many tries', async () => {
    const post = (body: string): Promise<Response> =>
      rawFetch('/v1/apply', { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/yaml' }, body });
    const laughs = [
      'a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]',
      ...'bcdefghi'.split('').map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(', ')}]`),
    ].join('\n');
    for (let k = 0; k < 10; k++) {
      for (const body of [
        '['.repeat(1_000) + ']'.repeat(1_000),
        '['.repeat(10_000) + ']'.repeat(10_000),
        '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000),
        laughs,
      ]) {
        const res = await post(body);
        const status = (await res.json()) as { code: number; reason: string; message: string };
        expect(res.status, status.message).toBe(400);
        expect(status.message).toMatch(/nests more than 64 levels|alias expansions/);
      }
    }
    expect((await rawFetch('/healthz/ready')).status).toBe(200);
  });

  it('answers 413 (not a reset) to a body over the limit, declared or chunked', async () => {
    const big = Buffer.alloc(9 * 1024 * 1024, 0x61);
    const declared = await rawFetch('/v1/apply', { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: big });
    expect(declared.status).toBe(413);
    expect(((await declared.json()) as { reason: string }).reason).toBe('RequestEntityTooLarge');
    // no content-length: a stream of chunks that passes the limit midway
    let sent = 0;
    const chunked = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= big.length) return c.close();
        c.enqueue(big.subarray(sent, sent + 256 * 1024));
        sent += 256 * 1024;
      },
    });
    const streamed = await rawFetch('/v1/apply', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: chunked,
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect((await rawFetch('/healthz/ready')).status).toBe(200);
  });

  it('keeps answering other requests while a large YAML body is parsed (off the event loop)', async () => {
    let yaml = '';
    for (let i = 0; yaml.length < 1024 * 1024; i++) {
      yaml += `apiVersion: nodemesh.io/v1alpha1\nkind: Workload\nmetadata:\n  name: w-${i}\n  namespace: nowhere\nspec:\n  node: node-1\n  addresses: [10.9.${(i >> 8) & 255}.${i & 255}]\n---\n`;
    }
    const started = performance.now();
    const apply = rawFetch('/v1/apply', { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/yaml' }, body: yaml });
    let done = false;
    void apply.finally(() => (done = true));
    let slowest = 0;
    let probes = 0;
    while (!done) {
      const t = performance.now();
      expect((await rawFetch('/healthz/ready')).status).toBe(200);
      slowest = Math.max(slowest, performance.now() - t);
      probes++;
      await new Promise((r) => setTimeout(r, 20));
    }
    const res = await apply;
    const took = performance.now() - started;
    expect(res.status).toBe(400); // namespace "nowhere" does not exist: parsed, then refused whole
    expect(((await res.json()) as { message: string }).message).toMatch(/nowhere/);
    // The parse takes seconds (~5 ms per KiB); health checks wait at most for copying the result.
    expect(probes).toBeGreaterThan(3);
    expect(slowest).toBeLessThan(Math.max(500, took / 3));
  }, 60_000);
});
