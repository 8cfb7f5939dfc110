// The Kubernetes config source: a ConfigStore whose resources mirror what the API server holds.
// One `@kubernetes/client-node` informer (ListWatch) per watched kind lists, then watches from the
// list's resourceVersion (with allowWatchBookmarks, so an idle watch keeps a fresh
// resourceVersion); a watch that ends resumes from the last resourceVersion seen; `410 Gone`
// (Expired) makes the informer list again, and the relist's difference is mirrored (objects gone
// meanwhile are deleted, the rest updated only if changed: nothing lost, nothing repeated); any
// other failure retries with exponential backoff (250 ms doubling to 30 s, ±20 % jitter, reset by
// the next successful list or event). An optional kind (a CRD the cluster may lack: Gateway API,
// Istio's security.istio.io) whose list is 404 counts as synced and empty — the sync does not wait
// for it —, is logged once with what to do, and is listed again with the same backoff, so
// installing the CRD later starts its watch (and deleting it deletes what was mirrored from it).
// Istio's AuthorizationPolicy/PeerAuthentication yield to nodemesh's own of the same namespace and
// name (the mesh has one name space per kind, as the embedded store). Every object is translated (translate.ts) and the changes
// of one event-loop turn are committed as ONE store revision, so translation and xDS run exactly
// as on the file store.
//
// Writes through the nodemesh config API are refused (ReadOnlyStoreError, HTTP 405): on
// Kubernetes the API server is the source of truth; use kubectl.
import type { Logger } from '../../common/log';
import { backoffDelay } from '../../common/backoff';
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
  /** An optional kind the API server does not serve (its CRD is not installed). */
  readonly notServed?: boolean;
}

const READ_ONLY =
  'the control plane runs with --config-source kubernetes: its configuration lives in the Kubernetes API server; change it there (kubectl apply -f FILE, kubectl delete …)';

class KindInformer {
  lists = 0;
  watchEvents = 0;
  bookmarks = 0;
  synced = false;
  /** An optional kind whose list was 404: not served (no CRD). */
  notServed = false;
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
        // Nothing to watch while the kind is not served: end at once, and the backoff lists again.
        this.notServed
          ? (setImmediate(() => done(Object.assign(new Error(NOT_SERVED), { statusCode: 404 }))), { abort: () => undefined })
          : base.watch(
              path,
              { ...params, allowWatchBookmarks: true },
              (phase: string, obj: unknown, raw: unknown) => {
                if (phase === 'BOOKMARK') this.bookmarks++;
                else this.watchEvents++;
                if (phase !== 'ERROR') this.attempt = 0;
                cb(phase, obj, raw);
              },
              // An optional kind whose watch is 404 lost its CRD: list again at once, as after a 410
              // (ListWatch's relist signal), which finds it not served and empties it.
              (err: unknown) =>
                done(kind.optional && (err as { statusCode?: unknown } | null)?.statusCode === 404 ? Object.assign(err as object, { statusCode: 410 }) : err),
            ),
    } as unknown as K8s.Watch;
    const list = async () => {
      let result: K8s.KubernetesListObject<K8s.KubernetesObject>;
      try {
        result = await objects.list(kind.apiVersion, kind.kind);
      } catch (err) {
        if (!kind.optional || (err as { code?: unknown }).code !== 404) throw err;
        // An optional kind the API server does not serve: synced and empty (what was mirrored from
        // it goes), logged once; the watch ends at once and the backoff lists again.
        this.lists++;
        this.synced = true;
        if (!this.notServed)
          this.log?.warn(
            { kind: kind.name, apiVersion: kind.apiVersion },
            `${kind.apiVersion} ${kind.kind} is not served by the API server (its CRD is not installed), so it is not watched: ${kind.optional.install}. It is checked again with backoff (up to every ${Math.round(this.backoff.maxMs / 1000)} s) and watched once served`,
          );
        this.notServed = true;
        return { apiVersion: 'v1', kind: 'List', items: [], metadata: {} };
      }
      if (this.notServed) this.log?.info({ kind: kind.name, apiVersion: kind.apiVersion }, `${kind.apiVersion} ${kind.kind} is served now: watching it`);
      this.notServed = false;
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
    this.lastError = this.notServed ? NOT_SERVED : describeError(err);
    if (this.stopped) return;
    const delay = backoffDelay(this.attempt, { ...this.backoff, jitter: 0.2 });
    this.attempt++;
    this.log?.[this.notServed ? 'debug' : 'warn'](
      { kind: this.kind.name, err: this.lastError, retryInMs: delay, resourceVersion: this.lw.latestResourceVersion() },
      'Kubernetes list/watch failed; retrying',
    );
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (!this.stopped) void this.start();
    }, delay);
  }
}

const NOT_SERVED = 'not served by the API server (CRD not installed)';

function describeError(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { message?: string; statusCode?: number; code?: number | string; body?: unknown };
    const parts = [e.message, e.statusCode ? `HTTP ${e.statusCode}` : e.code !== undefined ? String(e.code) : undefined].filter(Boolean);
    if (parts.length) return parts.join(' ');
  }
  return String(err);
}

/** A Kubernetes object's key: the informer's name (a kind of one API group), namespace, name. */
function objectKey(kind: WatchedKind, o: KubeObject): string {
  return `${kind.name}|${o.metadata?.namespace ?? ''}|${o.metadata?.name ?? ''}`;
}

/** The kinds whose objects yield to `winner`'s of the same namespace and name. */
const yieldingTo = (winner: WatchedKind) => WATCHED_KINDS.filter((k) => k.yieldsTo === winner.name);

export class KubernetesStore extends BaseStore {
  private readonly informers: KindInformer[] = [];
  /** Kubernetes object (`Kind|ns|name`) -> the mesh resources mirrored from it. */
  private readonly produced = new Map<string, ResourceKey[]>();
  /** Why objects are not (fully) mirrored, by Kubernetes object. */
  private readonly problems = new Map<string, string>();
  private readonly slices = new Map<string, KubeObject>();
  private readonly services = new Map<string, KubeObject>();
  /** Objects of kinds that yield (`yieldsTo`), by object key, to mirror again when the winner goes. */
  private readonly yielding = new Map<string, KubeObject>();
  /** Keys of present objects of kinds others yield to. */
  private readonly winners = new Set<string>();
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
      ...(i.notServed ? { notServed: true } : {}),
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
    const key = objectKey(kind, o);
    if (kind.kind === 'EndpointSlice') {
      this.slices.set(key, o);
      this.dirtySliceNamespaces.add(ns);
    } else {
      if (kind.kind === 'Service') this.services.set(key, o);
      if (kind.kind === 'Pod' || kind.kind === 'Service') this.dirtySliceNamespaces.add(ns);
      if (kind.yieldsTo) this.yielding.set(key, o);
      const winner = kind.yieldsTo !== undefined ? `${kind.yieldsTo}|${ns}|${o.metadata?.name ?? ''}` : undefined;
      if (winner && this.winners.has(winner)) {
        this.record(key, this.shadowed(kind, o));
      } else {
        // A winner arriving: the yielding objects' resources go first, so its own put stays.
        if (yieldingTo(kind).length) {
          this.winners.add(key);
          for (const y of yieldingTo(kind)) {
            const other = this.yielding.get(objectKey(y, o));
            if (other) this.record(objectKey(y, o), this.shadowed(y, other));
          }
        }
        this.record(key, kind.translate?.(o) ?? { resources: [] });
      }
    }
    this.scheduleFlush();
  }

  private remove(kind: WatchedKind, o: KubeObject): void {
    const key = objectKey(kind, o);
    if (kind.kind === 'EndpointSlice') this.slices.delete(key);
    if (kind.kind === 'Service') this.services.delete(key);
    if (kind.kind === 'Pod' || kind.kind === 'Service' || kind.kind === 'EndpointSlice') this.dirtySliceNamespaces.add(o.metadata?.namespace ?? '');
    this.yielding.delete(key);
    this.record(key, { resources: [] });
    // A winner gone: what yielded to it is mirrored again.
    if (this.winners.delete(key)) {
      for (const y of yieldingTo(kind)) {
        const other = this.yielding.get(objectKey(y, o));
        if (other) this.record(objectKey(y, o), y.translate?.(other) ?? { resources: [] });
      }
    }
    this.scheduleFlush();
  }

  private shadowed(kind: WatchedKind, o: KubeObject): Translated {
    const winner = WATCHED_KINDS.find((k) => k.name === kind.yieldsTo);
    const id = `${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name ?? '?'}`;
    return {
      resources: [],
      problem: `${kind.apiVersion} ${kind.kind} ${id} is not mirrored: ${winner?.apiVersion} ${winner?.kind} ${id} has the same name and wins (the mesh has one ${kind.kind} per namespace and name); rename one of them`,
    };
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
    const isMeshPod = (ns: string, name: string) => this.produced.has(`pods|${ns}|${name}`);
    const selectorOf = (ns: string, name: string) =>
      (this.services.get(`services|${ns}|${name}`)?.spec as { selector?: Record<string, string> } | undefined)?.selector;
    for (const [key, slice] of this.slices) {
      if (namespaces.has(slice.metadata?.namespace ?? '')) this.record(key, translateEndpointSlice(slice, isMeshPod, selectorOf));
    }
    // Slices deleted: their key is gone from this.slices but may still have produced resources.
    for (const key of [...this.produced.keys()]) {
      if (key.startsWith('endpointslices|') && !this.slices.has(key)) this.record(key, { resources: [] });
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
