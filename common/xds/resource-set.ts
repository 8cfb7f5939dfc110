// The resources of one type a delta xDS client holds, and how a response changes them. A response
// is applied whole or not at all: if any resource in it fails to decode or validate, nothing
// changes and the caller NACKs with the returned message (Envoy's behaviour for delta xDS).
import type { Resource } from '../../api/gen/envoy/service/discovery/v3/discovery';
import type { ResourceChange, ResourceEntry, ResourceType } from './types';

/** The parts of a DeltaDiscoveryResponse that change state. */
export interface DeltaUpdate {
  readonly typeUrl: string;
  readonly resources: readonly Resource[];
  readonly removedResources: readonly string[];
}

export type ApplyResult<T> =
  | { readonly ok: true; readonly change: ResourceChange<T> }
  | { readonly ok: false; readonly message: string; readonly rejected: readonly string[] };

/** At most this many problems are spelled out in a NACK message. */
const MAX_PROBLEMS_IN_MESSAGE = 10;

export class ResourceSet<T> {
  private readonly entries = new Map<string, ResourceEntry<T>>();

  constructor(readonly type: ResourceType<T>) {}

  get size(): number {
    return this.entries.size;
  }

  get(name: string): ResourceEntry<T> | undefined {
    return this.entries.get(name);
  }

  values(): IterableIterator<ResourceEntry<T>> {
    return this.entries.values();
  }

  /** name -> version, for initial_resource_versions on reconnect. */
  versions(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, entry] of this.entries) out[name] = entry.version;
    return out;
  }

  /** Decode and validate everything first; change state only when all of it is acceptable. */
  apply(update: DeltaUpdate, firstOnStream: boolean): ApplyResult<T> {
    const problems: string[] = [];
    const decoded: Array<ResourceEntry<T>> = [];
    for (const resource of update.resources) {
      const name = resource.name;
      if (!name) {
        problems.push('a resource without a name');
        continue;
      }
      const any = resource.resource;
      // A resource without a body only refreshes a TTL; nodemesh does not use TTLs, so it changes nothing.
      if (!any) continue;
      if (any.typeUrl !== this.type.typeUrl) {
        problems.push(`${name}: has type ${any.typeUrl || '(none)'}, expected ${this.type.typeUrl}`);
        continue;
      }
      let value: T;
      try {
        value = this.type.decode(any.value);
      } catch (err) {
        problems.push(`${name}: cannot be decoded: ${err instanceof Error ? err.message : String(err)}`);
        continue;
      }
      const invalid = this.type.validate?.(name, value);
      if (invalid !== undefined) {
        problems.push(`${name}: ${invalid}`);
        continue;
      }
      decoded.push({ name, version: resource.version, value });
    }
    if (problems.length > 0) {
      const shown = problems.slice(0, MAX_PROBLEMS_IN_MESSAGE).join('; ');
      const more = problems.length > MAX_PROBLEMS_IN_MESSAGE ? `; and ${problems.length - MAX_PROBLEMS_IN_MESSAGE} more` : '';
      return {
        ok: false,
        message: `rejected ${problems.length} of ${update.resources.length} ${this.type.typeUrl} resources: ${shown}${more}`,
        rejected: update.resources.map((r) => r.name),
      };
    }
    const updated: Array<ResourceEntry<T> & { previous?: T }> = [];
    for (const entry of decoded) {
      const previous = this.entries.get(entry.name);
      this.entries.set(entry.name, entry);
      updated.push(previous ? { ...entry, previous: previous.value } : entry);
    }
    const removed: Array<{ name: string; previous: T }> = [];
    for (const name of update.removedResources) {
      const previous = this.entries.get(name);
      // Removal of something never held is allowed by the protocol and changes nothing.
      if (!previous) continue;
      this.entries.delete(name);
      removed.push({ name, previous: previous.value });
    }
    return { ok: true, change: { typeUrl: this.type.typeUrl, updated, removed, firstOnStream } };
  }

  /** Forget names (after unsubscribing from them); returns what was dropped. */
  drop(names: Iterable<string>): ResourceChange<T> {
    const removed: Array<{ name: string; previous: T }> = [];
    for (const name of names) {
      const previous = this.entries.get(name);
      if (!previous) continue;
      this.entries.delete(name);
      removed.push({ name, previous: previous.value });
    }
    return { typeUrl: this.type.typeUrl, updated: [], removed, firstOnStream: false };
  }
}
