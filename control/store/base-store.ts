// The store logic shared by every backend that keeps the whole state in memory: validation,
// optimistic concurrency, admission, revisions, history and watchers. Writes are serialized
// through one queue; a write becomes visible (snapshot, watchers) only after `persist` succeeded.
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../common/log';
import { kindInfo, type AnyResource, type KindMap, type KindName } from '../resources/kinds';
import { DEFAULT_NAMESPACE, describeKey, keyOf, keyString, type ResourceKey } from '../resources/meta';
import { validateResource } from '../resources/validate';
import { ValidationError } from '../resources/validation';
import { allocateClusterIP, checkReferences } from './admission';
import { canonicalJson } from './canonical';
import { ConflictError, InvalidBatchError, NotFoundError, RevisionCompactedError, StoreUnavailableError } from './errors';
import { MemorySnapshot } from './snapshot';
import type {
  ApplyResult,
  BatchResult,
  ConfigStore,
  DeleteOptions,
  ListOptions,
  Snapshot,
  Watch,
  WatchBatch,
  WatchEvent,
  WatchListener,
  WriteOptions,
} from './store';

/** Everything a backend persists: enough to restore the store, its revision and watch history. */
export interface PersistedState {
  readonly revision: number;
  /** Watches may resume from any revision >= this one. */
  readonly oldestRevision: number;
  readonly resources: readonly AnyResource[];
  readonly history: readonly WatchBatch[];
}

export interface BaseStoreOptions {
  /** How many committed writes to keep for watchers that resume (default 1000). */
  historyLimit?: number;
  /** Where clusterIPs are allocated from when a Service gives none (default 10.96.0.0/16). */
  serviceCIDR?: string;
  logger?: Logger;
}

class WatchState implements Watch {
  queue: WatchBatch[] = [];
  scheduled = false;
  closed = false;
  constructor(
    readonly listener: WatchListener,
    private readonly onClose: (w: WatchState) => void,
  ) {}
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.onClose(this);
  }
}

export abstract class BaseStore implements ConfigStore {
  protected current: MemorySnapshot;
  protected history: WatchBatch[];
  protected oldestRevision: number;
  protected closed = false;
  private readonly watchers = new Set<WatchState>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly historyLimit: number;
  private readonly serviceCIDR: string;
  protected readonly log?: Logger;

  protected constructor(state: PersistedState, opts: BaseStoreOptions) {
    this.current = MemorySnapshot.of(state.revision, state.resources);
    this.history = [...state.history];
    this.oldestRevision = state.oldestRevision;
    this.historyLimit = opts.historyLimit ?? 1000;
    this.serviceCIDR = opts.serviceCIDR ?? '10.96.0.0/16';
    this.log = opts.logger;
  }

  /** Makes `next` durable. Throwing leaves the store unchanged. */
  protected abstract persist(next: PersistedState): Promise<void>;

  get revision(): number {
    return this.current.revision;
  }

  snapshot(): Snapshot {
    return this.current;
  }

  async get<K extends KindName>(kind: K, name: string, namespace?: string): Promise<KindMap[K] | undefined> {
    return this.current.get(kind, name, this.namespaceFor(kind, namespace));
  }

  async list<K extends KindName>(kind: K, opts?: ListOptions): Promise<readonly KindMap[K][]> {
    return this.current.list(kind, opts);
  }

  async apply(resource: unknown, opts?: WriteOptions): Promise<ApplyResult> {
    try {
      const result = await this.applyAll([resource], opts);
      return result.results[0];
    } catch (err) {
      if (err instanceof InvalidBatchError && err.errors.length === 1) throw err.errors[0];
      throw err;
    }
  }

  applyAll(inputs: readonly unknown[], opts: WriteOptions = {}): Promise<BatchResult> {
    return this.serialized(async () => {
      this.ensureOpen();
      const docs = this.validateAll(inputs);
      const cur = this.current;
      const rev = cur.revision + 1;
      const now = new Date().toISOString();
      const results: ApplyResult[] = [];
      const puts: AnyResource[] = [];
      const events: WatchEvent[] = [];
      const errors: ValidationError[] = [];
      const usedIPs = new Set(
        cur
          .list('Service')
          .map((s) => s.spec.clusterIP)
          .filter((ip): ip is string => !!ip),
      );
      for (const doc of docs) {
        const key = keyOf(doc);
        const existing = cur.getByKey(key);
        const sentVersion = doc.metadata.resourceVersion;
        if (sentVersion !== undefined && existing?.metadata.resourceVersion !== sentVersion) {
          throw new ConflictError(key, sentVersion, existing?.metadata.resourceVersion);
        }
        if (doc.kind === 'Service' && existing?.kind === 'Service') {
          const before = existing.spec.clusterIP;
          if (doc.spec.clusterIP === undefined) doc.spec.clusterIP = before;
          else if (before !== undefined && doc.spec.clusterIP !== before) {
            errors.push(
              new ValidationError(describeKey(key), [
                { path: 'spec.clusterIP', message: `is immutable (it is ${before}); delete and re-create the Service to change it` },
              ]),
            );
            continue;
          }
        }
        if (doc.kind === 'Service' && doc.spec.clusterIP === undefined) {
          try {
            doc.spec.clusterIP = allocateClusterIP(usedIPs, this.serviceCIDR);
          } catch (err) {
            errors.push(new ValidationError(describeKey(key), [{ path: 'spec.clusterIP', message: (err as Error).message }]));
            continue;
          }
          usedIPs.add(doc.spec.clusterIP);
        }
        if (existing && sameContent(existing, doc)) {
          results.push({ action: 'unchanged', resource: existing });
          continue;
        }
        const specChanged = !existing || canonicalJson(existing.spec) !== canonicalJson(doc.spec);
        const stored = {
          ...doc,
          metadata: {
            name: doc.metadata.name,
            ...(doc.metadata.namespace !== undefined ? { namespace: doc.metadata.namespace } : {}),
            ...(doc.metadata.labels ? { labels: doc.metadata.labels } : {}),
            ...(doc.metadata.annotations ? { annotations: doc.metadata.annotations } : {}),
            uid: existing?.metadata.uid ?? randomUUID(),
            resourceVersion: String(rev),
            generation: existing ? (existing.metadata.generation ?? 1) + (specChanged ? 1 : 0) : 1,
            creationTimestamp: existing?.metadata.creationTimestamp ?? now,
          },
        } as AnyResource;
        puts.push(stored);
        events.push({ type: existing ? 'MODIFIED' : 'ADDED', object: stored });
        results.push({ action: existing ? 'configured' : 'created', resource: stored });
      }
      if (errors.length) throw new InvalidBatchError(errors);
      if (puts.length === 0) return { revision: cur.revision, results, warnings: [] };
      const post = cur.withChanges(rev, puts, []);
      const admission = checkReferences(post, puts);
      if (admission.errors.length) throw new InvalidBatchError(admission.errors);
      if (!opts.dryRun) await this.commit(post, { revision: rev, events });
      return { revision: opts.dryRun ? cur.revision : rev, results, warnings: admission.warnings };
    });
  }

  delete(key: ResourceKey, opts: DeleteOptions = {}): Promise<AnyResource> {
    return this.serialized(async () => {
      this.ensureOpen();
      const info = kindInfo(key.kind);
      if (!info) throw new NotFoundError(key);
      const k: ResourceKey = { kind: key.kind, name: key.name, namespace: this.namespaceFor(key.kind, key.namespace) };
      const cur = this.current;
      const existing = cur.getByKey(k);
      if (!existing) throw new NotFoundError(k);
      if (opts.resourceVersion !== undefined && existing.metadata.resourceVersion !== opts.resourceVersion) {
        throw new ConflictError(k, opts.resourceVersion, existing.metadata.resourceVersion);
      }
      if (k.kind === 'Namespace' && k.name === DEFAULT_NAMESPACE) {
        throw new InvalidBatchError([new ValidationError(describeKey(k), [{ path: '', message: 'the default namespace cannot be deleted' }])]);
      }
      const rev = cur.revision + 1;
      const removed: AnyResource[] = k.kind === 'Namespace' ? cur.all().filter((r) => r.metadata.namespace === k.name) : [];
      removed.push(existing);
      const events: WatchEvent[] = removed.map((r) => ({
        type: 'DELETED',
        object: { ...r, metadata: { ...r.metadata, resourceVersion: String(rev) } } as AnyResource,
      }));
      const post = cur.withChanges(rev, [], removed.map(keyOf));
      if (!opts.dryRun) await this.commit(post, { revision: rev, events });
      return events[events.length - 1].object;
    });
  }

  /**
   * Commits changes made elsewhere, for a store that mirrors another source of truth (the
   * Kubernetes config source): no validation, admission or optimistic concurrency — the source
   * already decided. One revision for the whole call; each resource gets that resourceVersion.
   * Returns the new revision (unchanged when nothing differs from what is stored).
   */
  protected replicate(puts: readonly AnyResource[], removes: readonly ResourceKey[]): Promise<number> {
    return this.serialized(async () => {
      this.ensureOpen();
      const cur = this.current;
      const rev = cur.revision + 1;
      const events: WatchEvent[] = [];
      const stored: AnyResource[] = [];
      const gone: ResourceKey[] = [];
      for (const key of removes) {
        const existing = cur.getByKey(key);
        if (!existing) continue;
        gone.push(keyOf(existing));
        events.push({ type: 'DELETED', object: { ...existing, metadata: { ...existing.metadata, resourceVersion: String(rev) } } as AnyResource });
      }
      for (const r of puts) {
        const existing = cur.getByKey(keyOf(r));
        if (existing && sameContent(existing, r) && existing.metadata.uid === r.metadata.uid) continue;
        const next = { ...r, metadata: { ...r.metadata, resourceVersion: String(rev) } } as AnyResource;
        stored.push(next);
        events.push({ type: existing ? 'MODIFIED' : 'ADDED', object: next });
      }
      if (events.length === 0) return cur.revision;
      await this.commit(cur.withChanges(rev, stored, gone), { revision: rev, events });
      return rev;
    });
  }

  watch(fromRevision: number, listener: WatchListener): Watch {
    this.ensureOpen();
    if (!Number.isInteger(fromRevision) || fromRevision < 0) throw new RangeError(`watch revision must be a non-negative integer, got ${fromRevision}`);
    if (fromRevision < this.oldestRevision) throw new RevisionCompactedError(fromRevision, this.oldestRevision);
    const w = new WatchState(listener, (x) => this.watchers.delete(x));
    w.queue = this.history.filter((b) => b.revision > fromRevision);
    this.watchers.add(w);
    this.schedule(w);
    return w;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.serialized(async () => undefined);
    this.closed = true;
    for (const w of [...this.watchers]) w.close();
    await this.release();
  }

  /** Backend clean-up on close (locks, handles). */
  protected async release(): Promise<void> {}

  protected ensureOpen(): void {
    if (this.closed) throw new StoreUnavailableError('the config store is closed');
  }

  private namespaceFor(kind: string, namespace: string | undefined): string | undefined {
    const info = kindInfo(kind);
    if (!info?.namespaced) return undefined;
    return namespace ?? DEFAULT_NAMESPACE;
  }

  private validateAll(inputs: readonly unknown[]): AnyResource[] {
    const errors: ValidationError[] = [];
    const docs: AnyResource[] = [];
    const seen = new Map<string, number>();
    inputs.forEach((input, i) => {
      try {
        const doc = validateResource(input, { label: inputs.length > 1 ? `document ${i + 1}` : 'resource' });
        const ks = keyString(keyOf(doc));
        const prev = seen.get(ks);
        if (prev !== undefined) {
          errors.push(
            new ValidationError(describeKey(keyOf(doc)), [{ path: '', message: `appears twice in this batch (documents ${prev + 1} and ${i + 1})` }]),
          );
        } else seen.set(ks, i);
        docs.push(doc);
      } catch (err) {
        if (err instanceof ValidationError) errors.push(err);
        else throw err;
      }
    });
    if (errors.length) throw new InvalidBatchError(errors);
    return docs;
  }

  private async commit(post: MemorySnapshot, batch: WatchBatch): Promise<void> {
    let history = [...this.history, batch];
    let oldest = this.oldestRevision;
    if (history.length > this.historyLimit) {
      const dropped = history.slice(0, history.length - this.historyLimit);
      oldest = dropped[dropped.length - 1].revision;
      history = history.slice(dropped.length);
    }
    await this.persist({ revision: post.revision, oldestRevision: oldest, resources: post.all(), history });
    this.current = post;
    this.history = history;
    this.oldestRevision = oldest;
    for (const w of this.watchers) {
      w.queue.push(batch);
      this.schedule(w);
    }
  }

  private schedule(w: WatchState): void {
    if (w.scheduled || w.queue.length === 0) return;
    w.scheduled = true;
    setImmediate(() => {
      w.scheduled = false;
      while (!w.closed && w.queue.length > 0) {
        const batch = w.queue.shift() as WatchBatch;
        try {
          w.listener(batch);
        } catch (err) {
          this.log?.error({ err, revision: batch.revision }, 'config watch listener threw; it keeps receiving later changes');
        }
      }
    });
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/** A new store's state: revision 1 holds the `default` Namespace, as on Kubernetes. */
export function initialState(now = new Date()): PersistedState {
  const ns: AnyResource = {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: DEFAULT_NAMESPACE, uid: randomUUID(), resourceVersion: '1', generation: 1, creationTimestamp: now.toISOString() },
    spec: {},
  };
  return { revision: 1, oldestRevision: 0, resources: [ns], history: [{ revision: 1, events: [{ type: 'ADDED', object: ns }] }] };
}

function sameContent(a: AnyResource, b: AnyResource): boolean {
  return (
    a.apiVersion === b.apiVersion &&
    canonicalJson(a.metadata.labels ?? {}) === canonicalJson(b.metadata.labels ?? {}) &&
    canonicalJson(a.metadata.annotations ?? {}) === canonicalJson(b.metadata.annotations ?? {}) &&
    canonicalJson(a.spec) === canonicalJson(b.spec)
  );
}

/** A store that keeps state in memory only: for tests and for translation experiments. */
export class MemoryStore extends BaseStore {
  constructor(opts: BaseStoreOptions = {}) {
    super(initialState(), opts);
  }
  protected async persist(): Promise<void> {}
}
