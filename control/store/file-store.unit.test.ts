import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ValidationError } from '../resources/validation';
import { ConflictError, InvalidBatchError, NotFoundError, RevisionCompactedError, StoreUnavailableError } from './errors';
import { FileStore, STATE_FILE } from './file-store';
import type { WatchBatch } from './store';

const dirs: string[] = [];
const stores: FileStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'nm-store-'));
  dirs.push(d);
  return d;
}
async function openStore(dataDir: string, extra: Partial<Parameters<typeof FileStore.open>[0]> = {}): Promise<FileStore> {
  const s = await FileStore.open({ dataDir, ...extra });
  stores.push(s);
  return s;
}
const svc = (name: string, extra: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, ...metadata },
  spec: { ports: [{ port: 8080 }], selector: { app: name }, ...extra },
});
const wl = (name: string, ip: string, labels: Record<string, string> = { app: 'web' }, ports?: unknown) => ({
  apiVersion: 'nodemesh.io/v1alpha1',
  kind: 'Workload',
  metadata: { name, labels },
  spec: { node: 'nm-node1', addresses: [ip], ...(ports ? { ports } : {}) },
});

/** The ValidationError a write is refused with; the test fails if the write succeeds or fails otherwise. */
async function refusal(write: Promise<unknown>): Promise<ValidationError> {
  const err = await write.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ValidationError);
  return err as ValidationError;
}

function nextBatches(store: FileStore, from: number, count: number): Promise<WatchBatch[]> {
  return new Promise((resolve) => {
    const got: WatchBatch[] = [];
    const w = store.watch(from, (b) => {
      got.push(b);
      if (got.length === count) {
        w.close();
        resolve(got);
      }
    });
  });
}

describe('FileStore', () => {
  it('starts with the default namespace and creates state.json with mode 0600', async () => {
    const dir = tempDir();
    const store = await openStore(dir);
    expect(store.revision).toBe(1);
    expect(store.snapshot().get('Namespace', 'default')).toBeDefined();
    expect(statSync(join(dir, STATE_FILE)).mode & 0o777).toBe(0o600);
  });

  it('creates, updates, reports unchanged, and sets server metadata', async () => {
    const store = await openStore(tempDir());
    const created = await store.apply(svc('web'));
    expect(created.action).toBe('created');
    const m = created.resource.metadata;
    expect(m).toMatchObject({ namespace: 'default', resourceVersion: '2', generation: 1 });
    expect(m.uid).toMatch(/^[0-9a-f-]{36}$/);
    if (created.resource.kind !== 'Service') throw new Error('kind');
    expect(created.resource.spec.clusterIP).toBe('10.96.0.10');
    expect((await store.apply(svc('web'))).action).toBe('unchanged');
    expect(store.revision).toBe(2);
    const updated = await store.apply(svc('web', { ports: [{ port: 9090 }] }));
    expect(updated.action).toBe('configured');
    expect(updated.resource.metadata).toMatchObject({ uid: m.uid, resourceVersion: '3', generation: 2, creationTimestamp: m.creationTimestamp });
    const relabel = await store.apply(svc('web', { ports: [{ port: 9090 }] }, { labels: { tier: 'front' } }));
    expect(relabel.resource.metadata.generation).toBe(2);
    expect((await store.list('Service', { selector: { matchLabels: { tier: 'front' } } })).map((s) => s.metadata.name)).toEqual(['web']);
    expect(await store.list('Service', { namespace: 'other' })).toEqual([]);
  });

  it('refuses a stale resourceVersion and accepts the current one', async () => {
    const store = await openStore(tempDir());
    const v1 = (await store.apply(svc('web'))).resource.metadata.resourceVersion;
    await store.apply(svc('web', { ports: [{ port: 81 }] }, { resourceVersion: v1 }));
    const stale = store.apply(svc('web', { ports: [{ port: 82 }] }, { resourceVersion: v1 }));
    await expect(stale).rejects.toBeInstanceOf(ConflictError);
    await expect(stale).rejects.toThrow(/you sent resourceVersion 2, the stored one is 3/);
    await expect(store.delete({ kind: 'Service', name: 'web' }, { resourceVersion: v1 })).rejects.toBeInstanceOf(ConflictError);
    await expect(store.apply(svc('gone', {}, { resourceVersion: '5' }))).rejects.toBeInstanceOf(ConflictError);
  });

  it('serializes concurrent writers: one of many conditional updates wins, unconditional ones all land', async () => {
    const store = await openStore(tempDir());
    const base = (await store.apply(svc('web'))).resource.metadata.resourceVersion;
    const racers = Array.from({ length: 20 }, (_, i) => store.apply(svc('web', { ports: [{ port: 1000 + i }] }, { resourceVersion: base })));
    const outcomes = await Promise.allSettled(racers);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    expect(outcomes.filter((o) => o.status === 'rejected' && o.reason instanceof ConflictError)).toHaveLength(19);
    const revBefore = store.revision;
    await Promise.all(Array.from({ length: 30 }, (_, i) => store.apply(svc(`s${i}`))));
    expect(store.revision).toBe(revBefore + 30);
    const ips = (await store.list('Service')).map((s) => s.spec.clusterIP);
    expect(new Set(ips).size).toBe(31);
  });

  it('applies a batch all-or-nothing, in one revision, independent of document order', async () => {
    const store = await openStore(tempDir());
    const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } };
    const inShop = (r: ReturnType<typeof svc>) => ({ ...r, metadata: { ...r.metadata, namespace: 'shop' } });
    const bad = store.applyAll([inShop(svc('a')), ns, inShop(svc('b', { ports: [{ port: 0 }] }))]);
    await expect(bad).rejects.toBeInstanceOf(InvalidBatchError);
    await expect(bad).rejects.toThrow(/Service shop\/b is invalid: spec\.ports\[0\]\.port/);
    expect(store.revision).toBe(1);
    expect(store.snapshot().get('Namespace', 'shop')).toBeUndefined();
    const ok = await store.applyAll([inShop(svc('a')), ns, inShop(svc('b'))]);
    expect(ok.revision).toBe(2);
    expect(ok.results.map((r) => r.action)).toEqual(['created', 'created', 'created']);
    expect(store.snapshot().list('Service', { namespace: 'shop' })).toHaveLength(2);
  });

  it('refuses resources in a namespace that does not exist', async () => {
    const store = await openStore(tempDir());
    const err = await store.apply(svc('a', {}, { namespace: 'nope' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).message).toBe(
      'Service nope/a is invalid: metadata.namespace: namespace "nope" does not exist; create it first (or apply it in the same batch)',
    );
  });

  it('runs cross-resource checks: duplicate addresses, named targetPorts, route parents', async () => {
    const store = await openStore(tempDir());
    await store.apply(wl('a', '10.200.1.2', { app: 'web' }, [{ name: 'http', port: 8080 }]));
    const dup = await refusal(store.apply(wl('b', '10.200.1.2')));
    expect(dup.issues[0]).toEqual({ path: 'spec.addresses[0]', message: '10.200.1.2 is already an address of Workload default/a' });
    const named = await refusal(store.apply(svc('web', { ports: [{ port: 80, targetPort: 'grpc' }] })));
    expect(named.issues[0].path).toBe('spec.ports[0].targetPort');
    expect(named.issues[0].message).toMatch(/port named "grpc"/);
    await store.apply(svc('web', { ports: [{ port: 80, targetPort: 'http' }] }));
    const route = (parent: string) => ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'r' },
      spec: { parentRefs: [{ name: parent }], rules: [{ backendRefs: [{ name: 'web-v2', port: 80 }] }] },
    });
    const orphan = await refusal(store.apply(route('missing')));
    expect(orphan.issues[0]).toEqual({ path: 'spec.parentRefs[0].name', message: expect.stringContaining('Service default/missing does not exist') });
    const res = await store.applyAll([route('web')]);
    expect(res.warnings[0]).toMatch(/backendRefs\[0\] names Service default\/web-v2, which does not exist/);
    const clash = await refusal(store.apply(svc('other', { clusterIP: '10.96.0.10' })));
    expect(clash.issues[0]).toEqual({ path: 'spec.clusterIP', message: '10.96.0.10 is already the clusterIP of Service default/web' });
  });

  it('deletes, cascades namespace deletion in one revision, and reports not found', async () => {
    const store = await openStore(tempDir());
    await store.applyAll([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } }, svc('a', {}, { namespace: 'shop' })]);
    const rev = store.revision;
    const watched = nextBatches(store, rev, 1);
    const gone = await store.delete({ kind: 'Namespace', name: 'shop' });
    expect(gone.metadata.name).toBe('shop');
    expect(store.snapshot().list('Service', { namespace: 'shop' })).toEqual([]);
    const [batch] = await watched;
    expect(batch.revision).toBe(rev + 1);
    expect(batch.events.map((e) => `${e.type} ${e.object.kind}/${e.object.metadata.name}`)).toEqual(['DELETED Service/a', 'DELETED Namespace/shop']);
    await expect(store.delete({ kind: 'Service', name: 'a', namespace: 'shop' })).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.delete({ kind: 'Namespace', name: 'default' })).rejects.toThrow(/default namespace cannot be deleted/);
  });

  it('survives a restart: same resources, revision, uids and watch history', async () => {
    const dir = tempDir();
    const first = await openStore(dir);
    const created = await first.apply(svc('web'));
    await first.close();
    stores.length = 0;
    const second = await openStore(dir);
    expect(second.revision).toBe(2);
    expect(second.snapshot().get('Service', 'web', 'default')?.metadata.uid).toBe(created.resource.metadata.uid);
    const history = await nextBatches(second, 0, 2);
    expect(history.map((b) => b.revision)).toEqual([1, 2]);
    expect((await second.apply(svc('api'))).resource.metadata.resourceVersion).toBe('3');
  });

  it('keeps the old state when the process dies between writing the temp file and renaming it', async () => {
    const dir = tempDir();
    let crash = false;
    const store = await FileStore.open({
      dataDir: dir,
      crashBeforeRename: () => {
        if (crash) throw new Error('simulated crash');
      },
    });
    await store.apply(svc('web'));
    const before = readFileSync(join(dir, STATE_FILE), 'utf8');
    crash = true;
    await expect(store.apply(svc('web', { ports: [{ port: 9999 }] }))).rejects.toThrow('simulated crash');
    // What a crash leaves behind: a complete temp file next to the untouched state file.
    const leftovers = readdirSync(dir).filter((f) => f.startsWith(`${STATE_FILE}.tmp-`));
    expect(leftovers).toHaveLength(1);
    expect(readFileSync(join(dir, leftovers[0]), 'utf8')).toContain('9999');
    expect(readFileSync(join(dir, STATE_FILE), 'utf8')).toBe(before);
    await expect(store.apply(svc('x'))).rejects.toBeInstanceOf(StoreUnavailableError);
    // A half-written temp file from an earlier crash must not matter either.
    writeFileSync(join(dir, `${STATE_FILE}.tmp-1-1`), '{"format":"nodemesh.io/store/v1","revis');
    const restarted = await openStore(dir);
    expect(restarted.revision).toBe(2);
    expect(restarted.snapshot().get('Service', 'web', 'default')?.spec.ports[0].port).toBe(8080);
    expect(readdirSync(dir).filter((f) => f.startsWith(`${STATE_FILE}.tmp-`))).toEqual([]);
  });

  it('refuses a second store on the same data dir while the first runs', async () => {
    const dir = tempDir();
    await openStore(dir);
    await expect(FileStore.open({ dataDir: dir })).rejects.toThrow(new RegExp(`in use by another nodemesh control plane \\(pid ${process.pid}\\)`));
  });

  it('takes over the lock of a process that died', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'store.lock'), '999999999\n');
    const store = await openStore(dir);
    expect(store.revision).toBe(1);
  });

  it('refuses an unreadable state file with advice instead of starting empty', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, STATE_FILE), 'not json');
    await expect(FileStore.open({ dataDir: dir })).rejects.toThrow(/unreadable .*move it away/);
  });

  it('watches from a revision: replays history in order, then live changes; compacted revisions say relist', async () => {
    const store = await openStore(tempDir(), { historyLimit: 3 });
    for (const n of ['a', 'b', 'c', 'd']) await store.apply(svc(n)); // revisions 2..5
    expect(() => store.watch(1, () => undefined)).toThrow(RevisionCompactedError);
    expect(() => store.watch(1, () => undefined)).toThrow(/revision 1 was compacted .* list again/);
    const got = nextBatches(store, 2, 4);
    await store.apply(svc('e'));
    const batches = await got;
    expect(batches.map((b) => b.revision)).toEqual([3, 4, 5, 6]);
    expect(batches.map((b) => b.events[0].object.metadata.name)).toEqual(['b', 'c', 'd', 'e']);
    expect(batches[3].events[0].type).toBe('ADDED');
  });

  it('gives immutable snapshots: later writes do not change an earlier snapshot', async () => {
    const store = await openStore(tempDir());
    await store.apply(svc('web'));
    const snap = store.snapshot();
    await store.apply(svc('web', { ports: [{ port: 1 }] }));
    await store.delete({ kind: 'Service', name: 'web' });
    expect(snap.revision).toBe(2);
    expect(snap.get('Service', 'web', 'default')?.spec.ports[0].port).toBe(8080);
    expect(() => {
      (snap.get('Service', 'web', 'default')?.spec.ports as { port: number }[])[0].port = 5;
    }).toThrow(TypeError);
  });

  it('dry run validates and admits but writes nothing', async () => {
    const store = await openStore(tempDir());
    const res = await store.applyAll([svc('web')], { dryRun: true });
    expect(res.results[0].action).toBe('created');
    expect(store.revision).toBe(1);
    expect(store.snapshot().get('Service', 'web', 'default')).toBeUndefined();
  });
});
