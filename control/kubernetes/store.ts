// The Kubernetes config source: a ConfigStore whose resources mirror what the API server holds.
// One `@kubernetes/client-node` informer (ListWatch) per watched kind lists, then watches from the
// list's resourceVersion (with allowWatchBookmarks, so an idle watch keeps a fresh
// resourceVersion); a watch that ends resumes from the last resourceVersion seen; `410 Gone`
// (Expired) makes the informer list again, and the relist's difference is mirrored (objects gone
// meanwhile are deleted, the rest updated only if changed: nothing lost, nothing repeated); any
// other failure retries with exponential backoff (250 ms doubling to 30 s, ±20 % jitter, reset by
// the next successful list or event). Every object is translated (translate.ts) and the changes
// of one event-loop turn are committed as ONE store revision, so translation and xDS run exactly
// as on the file store.
//
// Writes through the nodemesh config API are refused (ReadOnlyStoreError, HTTP 405): on
// Kubernetes the API server is the source of truth; use kubectl.
import type { Logger } from '../../common/log';
import { BaseStore, type BaseStoreOptions } from '../store/base-store';
import { ReadOnlyStoreError, StoreUnavailableError } from '../store/errors';
import type { ApplyResult, BatchResult, DeleteOptions, WriteOptions } from '../store/store';
import type { AnyResource } from '../resources/kinds';
import { keyString, type ResourceKey } from '../resources/meta';
import { kubeModule, loadKubeConfig, serverOf, type K8s, type KubeModule } from './client';
import { WATCHED_KINDS, type WatchedKind } from './sources';
import { translateEndpointSlice, type KubeObject, type Translated } from './translate';

export interface KubernetesStoreOptions extends BaseStoreOptions {
  /** A kubeconfig file; in-cluster configuration when omitted. */
  kubeconfig?: string;
  /** A loaded configuration (takes precedence over `kubeconfig`). */
  kubeConfig?: K8s.KubeConfig;
  /** How long open() waits for every kind's first list (default 60 s). */
  syncTimeoutMs?: number;
  /** Retry delays (default 250 ms doubling to 30 s). */
  backoff?: { initialMs: number; maxMs: number };
}

export interface SourceStatus {
  readonly name: string;
  readonly synced: boolean;
  /** The resourceVersion the informer resumes from. */
  readonly resourceVersion: string;
  readonly lists: number;
  readonly watchEvents: number;
  readonly bookmarks: number;
  readonly lastError?: string;
}

const READ_ONLY =
  'the control plane runs with --config-source kubernetes: its configuration lives in the Kubernetes API server; change it there (kubectl apply -f FILE, kubectl delete …)';

class KindInformer {
  lists = 0;
  watchEvents = 0;
  bookmarks = 0;
  synced = false;
  lastError?: string;
  private attempt = 0;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  readonly lw: K8s.ListWatch<K8s.KubernetesObject>;

  constructor(
    k8s: KubeModule,
    kc: K8s.KubeConfig,
    objects: K8s.KubernetesObjectApi,
    readonly kind: WatchedKind,
    private readonly backoff: { initialMs: number; maxMs: number },
    private readonly log: Logger | undefined,
    handlers: { upsert: (o: KubeObject) => void; remove: (o: KubeObject) => void },
  ) {
    const base = new k8s.Watch(kc);
    // The informer's watch, with bookmarks asked for and events counted.
    const watch = {
      config: kc,
      watch: (path: string, params: Record<string, unknown>, cb: (phase: string, obj: unknown, raw: unknown) => void, done: (err: unknown) => void) =>
        base.watch(
          path,
          { ...params, allowWatchBookmarks: true },
          (phase: string, obj: unknown, raw: unknown) => {
            if (phase === 'BOOKMARK') this.bookmarks++;
            else this.watchEvents++;
            if (phase !== 'ERROR') this.attempt = 0;
            cb(phase, obj, raw);
          },
          done,
        ),
    } as unknown as K8s.Watch;
    const list = async () => {
      const result = await objects.list(kind.apiVersion, kind.kind);
      this.lists++;
      this.synced = true;
      this.attempt = 0;
      this.lastError = undefined;
      return result;
    };
    this.lw = new k8s.ListWatch(kind.path, watch, list, false);
    this.lw.on('add', (o) => handlers.upsert(o as KubeObject));
    this.lw.on('update', (o) => handlers.upsert(o as KubeObject));
    this.lw.on('delete', (o) => handlers.remove(o as KubeObject));
    this.lw.on('error', (err: unknown) => this.failed(err));
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.lw.start();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    void this.lw.stop();
  }

  private failed(err: unknown): void {
    this.lastError = describeError(err);
    if (this.stopped) return;
    const base = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** this.attempt);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.attempt++;
    this.log?.warn(
      { kind: this.kind.name, err: this.lastError, retryInMs: delay, resourceVersion: this.lw.latestResourceVersion() },
      'Kubernetes list/watch failed; retrying',
    );
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (!this.stopped) void this.start();
    }, delay);
  }
}

function describeError(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { message?: string; statusCode?: number; code?: number | string; body?: unknown };
    const parts = [e.message, e.statusCode ? `HTTP ${e.statusCode}` : e.code !== undefined ? String(e.code) : undefined].filter(Boolean);
    if (parts.length) return parts.join(' ');
  }
  return String(err);
}

function objectKey(kind: string, o: KubeObject): string {
  return `${kind}|${o.metadata?.namespace ?? ''}|${o.metadata?.name ?? ''}`;
}

export class KubernetesStore extends BaseStore {
  private readonly informers: KindInformer[] = [];
  /** Kubernetes object (`Kind|ns|name`) -> the mesh resources mirrored from it. */
  private readonly produced = new Map<string, ResourceKey[]>();
  /** Why objects are not (fully) mirrored, by Kubernetes object. */
  private readonly problems = new Map<string, string>();
  private readonly slices = new Map<string, KubeObject>();
  private readonly services = new Map<string, KubeObject>();
  private pending = new Map<string, { put?: AnyResource; remove?: ResourceKey }>();
  private dirtySliceNamespaces = new Set<string>();
  private flushScheduled = false;

  private constructor(
    /** The client configuration, for other API users in the control plane (TokenReview, controllers). */
    readonly kubeConfig: K8s.KubeConfig,
    opts: KubernetesStoreOptions,
  ) {
    super({ revision: 0, oldestRevision: 0, resources: [], history: [] }, opts);
  }

  static async open(opts: KubernetesStoreOptions = {}): Promise<KubernetesStore> {
    const k8s = await kubeModule();
    const kc = opts.kubeConfig ?? (await loadKubeConfig(opts.kubeconfig));
    const store = new KubernetesStore(kc, opts);
    const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
    const backoff = opts.backoff ?? { initialMs: 250, maxMs: 30_000 };
    for (const kind of WATCHED_KINDS) {
      store.informers.push(
        new KindInformer(k8s, kc, objects, kind, backoff, opts.logger, {
          upsert: (o) => store.upsert(kind, o),
          remove: (o) => store.remove(kind, o),
        }),
      );
    }
    await Promise.all(store.informers.map((i) => i.start()));
    const deadline = Date.now() + (opts.syncTimeoutMs ?? 60_000);
    while (!store.informers.every((i) => i.synced)) {
      if (Date.now() > deadline) {
        const missing = store.informers.filter((i) => !i.synced).map((i) => `${i.kind.name} (${i.lastError ?? 'no answer'})`);
        await store.close();
        throw new StoreUnavailableError(
          `cannot list ${missing.join(', ')} from the Kubernetes API server at ${store.server}: check that it is reachable, that the CRDs are installed and that the control plane's ServiceAccount may list and watch them (RBAC)`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await store.flushNow();
    opts.logger?.info({ server: store.server, revision: store.revision, resources: store.current.all().length }, 'Kubernetes config source synced');
    return store;
  }

  /** The API server's URL. */
  get server(): string {
    return serverOf(this.kubeConfig);
  }

  /** Each watched kind: synced, resume point, counters, last error. */
  sources(): SourceStatus[] {
    return this.informers.map((i) => ({
      name: i.kind.name,
      synced: i.synced,
      resourceVersion: i.lw.latestResourceVersion(),
      lists: i.lists,
      watchEvents: i.watchEvents,
      bookmarks: i.bookmarks,
      ...(i.lastError ? { lastError: i.lastError } : {}),
    }));
  }

  /** Kubernetes objects that are not (fully) mirrored, and why. */
  notMirrored(): string[] {
    return [...this.problems.values()].sort();
  }

  override async apply(_resource: unknown, _opts?: WriteOptions): Promise<ApplyResult> {
    throw new ReadOnlyStoreError(READ_ONLY);
  }
  override async applyAll(_resources: readonly unknown[], _opts?: WriteOptions): Promise<BatchResult> {
    throw new ReadOnlyStoreError(READ_ONLY);
  }
  override async delete(_key: ResourceKey, _opts?: DeleteOptions): Promise<AnyResource> {
    throw new ReadOnlyStoreError(READ_ONLY);
  }

  protected async persist(): Promise<void> {}

  protected override async release(): Promise<void> {
    for (const i of this.informers) i.stop();
  }

  private upsert(kind: WatchedKind, o: KubeObject): void {
    const ns = o.metadata?.namespace ?? '';
    if (kind.kind === 'EndpointSlice') {
      this.slices.set(objectKey(kind.kind, o), o);
      this.dirtySliceNamespaces.add(ns);
    } else {
      if (kind.kind === 'Service') this.services.set(objectKey(kind.kind, o), o);
      if (kind.kind === 'Pod' || kind.kind === 'Service') this.dirtySliceNamespaces.add(ns);
      this.record(objectKey(kind.kind, o), kind.translate?.(o) ?? { resources: [] });
    }
    this.scheduleFlush();
  }

  private remove(kind: WatchedKind, o: KubeObject): void {
    const key = objectKey(kind.kind, o);
    if (kind.kind === 'EndpointSlice') this.slices.delete(key);
    if (kind.kind === 'Service') this.services.delete(key);
    if (kind.kind === 'Pod' || kind.kind === 'Service' || kind.kind === 'EndpointSlice') this.dirtySliceNamespaces.add(o.metadata?.namespace ?? '');
    this.record(key, { resources: [] });
    this.scheduleFlush();
  }

  /** Queues the difference between what `key` produced before and `t`. */
  private record(key: string, t: Translated): void {
    const before = this.produced.get(key) ?? [];
    const now = t.resources.map((r) => ({ kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name }));
    const nowKeys = new Set(now.map(keyString));
    for (const k of before) if (!nowKeys.has(keyString(k))) this.pending.set(keyString(k), { remove: k });
    for (const r of t.resources) this.pending.set(keyString({ kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name }), { put: r });
    if (now.length) this.produced.set(key, now);
    else this.produced.delete(key);
    if (t.problem) {
      if (this.problems.get(key) !== t.problem) this.log?.warn({ object: key }, t.problem);
      this.problems.set(key, t.problem);
    } else this.problems.delete(key);
  }

  private retranslateSlices(): void {
    const namespaces = this.dirtySliceNamespaces;
    this.dirtySliceNamespaces = new Set();
    const isMeshPod = (ns: string, name: string) => this.produced.has(`Pod|${ns}|${name}`);
    const selectorOf = (ns: string, name: string) =>
      (this.services.get(`Service|${ns}|${name}`)?.spec as { selector?: Record<string, string> } | undefined)?.selector;
    for (const [key, slice] of this.slices) {
      if (namespaces.has(slice.metadata?.namespace ?? '')) this.record(key, translateEndpointSlice(slice, isMeshPod, selectorOf));
    }
    // Slices deleted: their key is gone from this.slices but may still have produced resources.
    for (const key of [...this.produced.keys()]) {
      if (key.startsWith('EndpointSlice|') && !this.slices.has(key)) this.record(key, { resources: [] });
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushNow().catch((err: unknown) => this.log?.error({ err }, 'mirroring Kubernetes changes into the config store failed'));
    });
  }

  private async flushNow(): Promise<void> {
    if (this.dirtySliceNamespaces.size) this.retranslateSlices();
    const batch = this.pending;
    this.pending = new Map();
    if (batch.size === 0 || this.closed) return;
    const puts: AnyResource[] = [];
    const removes: ResourceKey[] = [];
    for (const op of batch.values()) {
      if (op.put) puts.push(op.put);
      else if (op.remove) removes.push(op.remove);
    }
    await this.replicate(puts, removes);
  }
}
