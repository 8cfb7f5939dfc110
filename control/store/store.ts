// The config store interface. The embedded file store implements it now; a Kubernetes store (API
// server + informers) can implement it later. Every write is validated and admitted against a
// consistent view; every change gets a store-wide revision; watchers resume from a revision.
//
// Revisions: one integer counter per store, incremented once per committed write (an atomic
// batch of several resources is ONE revision). A resource's metadata.resourceVersion is the
// revision of its last write, as a decimal string. Deleting and re-creating a resource changes
// its uid.
import type { AnyResource, KindMap, KindName } from '../resources/kinds';
import type { LabelSelector } from '../resources/fields';
import type { ResourceKey } from '../resources/meta';

export interface ListOptions {
  /** Only this namespace (ignored for cluster-scoped kinds); all namespaces when omitted. */
  namespace?: string;
  /** Only resources whose labels match. */
  selector?: LabelSelector;
}

/** An immutable, consistent view of every resource at one revision. */
export interface Snapshot {
  readonly revision: number;
  get<K extends KindName>(kind: K, name: string, namespace?: string): KindMap[K] | undefined;
  /** Sorted by namespace, then name. */
  list<K extends KindName>(kind: K, opts?: ListOptions): readonly KindMap[K][];
  /** Every resource, sorted by kind, namespace, name. */
  all(): readonly AnyResource[];
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface WatchEvent {
  readonly type: WatchEventType;
  /** For DELETED: the resource as it was last stored (resourceVersion = revision of the delete). */
  readonly object: AnyResource;
}

/** All changes of one committed write, in the order given. */
export interface WatchBatch {
  readonly revision: number;
  readonly events: readonly WatchEvent[];
}

export interface Watch {
  close(): void;
}

export type WatchListener = (batch: WatchBatch) => void;

export type ApplyAction = 'created' | 'configured' | 'unchanged';

export interface ApplyResult {
  readonly action: ApplyAction;
  /** The stored resource, with server-set metadata. */
  readonly resource: AnyResource;
}

export interface BatchResult {
  /** The store revision after the batch (unchanged when nothing changed). */
  readonly revision: number;
  readonly results: readonly ApplyResult[];
  /** Things that did not stop the write but probably deserve a look (dangling references). */
  readonly warnings: readonly string[];
}

export interface WriteOptions {
  /** Validate and admit, report what would happen, write nothing. */
  dryRun?: boolean;
}

export interface DeleteOptions extends WriteOptions {
  /** Only delete when the stored resourceVersion is this one (else ConflictError). */
  resourceVersion?: string;
}

export interface ConfigStore {
  /** The revision of the newest committed write. */
  readonly revision: number;
  get<K extends KindName>(kind: K, name: string, namespace?: string): Promise<KindMap[K] | undefined>;
  list<K extends KindName>(kind: K, opts?: ListOptions): Promise<readonly KindMap[K][]>;
  /**
   * Creates or replaces one resource (given as parsed YAML/JSON; validated here). With
   * metadata.resourceVersion set, the write only happens if that is still the stored version.
   */
  apply(resource: unknown, opts?: WriteOptions): Promise<ApplyResult>;
  /** Applies several resources all-or-nothing, as one revision. */
  applyAll(resources: readonly unknown[], opts?: WriteOptions): Promise<BatchResult>;
  /** Deletes one resource and returns its last state. Deleting a Namespace deletes its contents. */
  delete(key: ResourceKey, opts?: DeleteOptions): Promise<AnyResource>;
  /** The current consistent view. Cheap: snapshots are shared, never copied on read. */
  snapshot(): Snapshot;
  /**
   * Streams every batch with revision > fromRevision (history first, then live), in order.
   * Throws RevisionCompactedError when history no longer reaches back to fromRevision: list
   * (snapshot) again and watch from its revision.
   */
  watch(fromRevision: number, listener: WatchListener): Watch;
  close(): Promise<void>;
}
