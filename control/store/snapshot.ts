// An immutable, indexed view of all resources at one revision. Writers derive the next snapshot
// with `withChanges` (copy-on-write per kind), so readers holding an older one are unaffected.
import type { AnyResource, KindMap, KindName } from '../resources/kinds';
import { keyString, type ResourceKey } from '../resources/meta';
import { matchesSelector } from '../resources/selectors';
import type { ListOptions, Snapshot } from './store';

type KindIndex = ReadonlyMap<string, AnyResource>;

function byNamespaceThenName(a: AnyResource, b: AnyResource): number {
  const an = a.metadata.namespace ?? '';
  const bn = b.metadata.namespace ?? '';
  if (an !== bn) return an < bn ? -1 : 1;
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}

/** Recursively freezes a stored object so no reader can change shared state by accident. */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}

export class MemorySnapshot implements Snapshot {
  private readonly sorted = new Map<string, readonly AnyResource[]>();

  private constructor(
    readonly revision: number,
    private readonly kinds: ReadonlyMap<string, KindIndex>,
  ) {}

  static empty(revision = 0): MemorySnapshot {
    return new MemorySnapshot(revision, new Map());
  }

  static of(revision: number, resources: Iterable<AnyResource>): MemorySnapshot {
    const kinds = new Map<string, Map<string, AnyResource>>();
    for (const r of resources) {
      let idx = kinds.get(r.kind);
      if (!idx) kinds.set(r.kind, (idx = new Map()));
      idx.set(keyString({ kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name }), deepFreeze(r));
    }
    return new MemorySnapshot(revision, kinds);
  }

  /** A new snapshot at `revision` with `put` stored and `remove` deleted. */
  withChanges(revision: number, put: readonly AnyResource[], remove: readonly ResourceKey[]): MemorySnapshot {
    const kinds = new Map(this.kinds);
    const touched = new Map<string, Map<string, AnyResource>>();
    const indexFor = (kind: string) => {
      let idx = touched.get(kind);
      if (!idx) {
        idx = new Map(kinds.get(kind) ?? []);
        touched.set(kind, idx);
        kinds.set(kind, idx);
      }
      return idx;
    };
    for (const k of remove) indexFor(k.kind).delete(keyString(k));
    for (const r of put) indexFor(r.kind).set(keyString({ kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name }), deepFreeze(r));
    return new MemorySnapshot(revision, kinds);
  }

  getByKey(key: ResourceKey): AnyResource | undefined {
    return this.kinds.get(key.kind)?.get(keyString(key));
  }

  get<K extends KindName>(kind: K, name: string, namespace?: string): KindMap[K] | undefined {
    return this.kinds.get(kind)?.get(keyString({ kind, namespace, name })) as KindMap[K] | undefined;
  }

  list<K extends KindName>(kind: K, opts: ListOptions = {}): readonly KindMap[K][] {
    let all = this.sorted.get(kind);
    if (!all) {
      all = [...(this.kinds.get(kind)?.values() ?? [])].sort(byNamespaceThenName);
      this.sorted.set(kind, all);
    }
    if (opts.namespace === undefined && opts.selector === undefined) return all as readonly KindMap[K][];
    return all.filter(
      (r) =>
        (opts.namespace === undefined || r.metadata.namespace === undefined || r.metadata.namespace === opts.namespace) &&
        matchesSelector(r.metadata.labels, opts.selector),
    ) as KindMap[K][];
  }

  all(): readonly AnyResource[] {
    const kinds = [...this.kinds.keys()].sort();
    return kinds.flatMap((k) => this.list(k as KindName));
  }
}
