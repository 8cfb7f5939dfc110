// The shared resource cache: per type URL, resource name -> encoded resource with its version.
// Every client sees the same resources (the workload API). Writers replace a type's whole set (the
// cache works out what changed by comparing versions) or apply upserts/removals; listeners hear
// only about names that really changed, and nothing at all when nothing did.
import type { XdsResource } from './resource';
import type { ChangeListener, ClientInfo, ResourceSource } from './source';

export interface CacheDiff {
  /** Names added or whose version changed. */
  readonly changed: string[];
  readonly removed: string[];
}

export class SharedCache implements ResourceSource {
  private readonly types = new Map<string, Map<string, XdsResource>>();
  private readonly versions = new Map<string, string>();
  private readonly listeners = new Set<ChangeListener>();

  constructor(typeUrls: readonly string[]) {
    for (const typeUrl of typeUrls) this.types.set(typeUrl, new Map());
  }

  get typeUrls(): readonly string[] {
    return [...this.types.keys()];
  }

  resources(typeUrl: string, _client?: ClientInfo): ReadonlyMap<string, XdsResource> | undefined {
    return this.types.get(typeUrl);
  }

  systemVersion(typeUrl: string): string {
    return this.versions.get(typeUrl) ?? '';
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Make `next` the complete set of resources of a type. */
  replace(typeUrl: string, next: ReadonlyMap<string, XdsResource>, systemVersion?: string): CacheDiff {
    const current = this.typeMap(typeUrl);
    const changed: string[] = [];
    const removed: string[] = [];
    for (const [name, resource] of next) {
      const old = current.get(name);
      if (!old || old.version !== resource.version) {
        current.set(name, resource);
        changed.push(name);
      }
    }
    for (const name of current.keys()) if (!next.has(name)) removed.push(name);
    for (const name of removed) current.delete(name);
    return this.finish(typeUrl, { changed, removed }, systemVersion);
  }

  /** Add or replace some resources and remove others, leaving the rest alone. */
  update(typeUrl: string, upserts: Iterable<XdsResource>, removals: Iterable<string> = [], systemVersion?: string): CacheDiff {
    const current = this.typeMap(typeUrl);
    const changed: string[] = [];
    const removed: string[] = [];
    for (const resource of upserts) {
      const old = current.get(resource.name);
      if (!old || old.version !== resource.version) {
        current.set(resource.name, resource);
        changed.push(resource.name);
      }
    }
    for (const name of removals) if (current.delete(name)) removed.push(name);
    return this.finish(typeUrl, { changed, removed }, systemVersion);
  }

  private typeMap(typeUrl: string): Map<string, XdsResource> {
    const map = this.types.get(typeUrl);
    if (!map) throw new Error(`the xDS cache does not serve ${typeUrl}; known: ${[...this.types.keys()].join(', ')}`);
    return map;
  }

  private finish(typeUrl: string, diff: CacheDiff, systemVersion: string | undefined): CacheDiff {
    if (systemVersion !== undefined) this.versions.set(typeUrl, systemVersion);
    if (diff.changed.length === 0 && diff.removed.length === 0) return diff;
    const change = { typeUrl, names: new Set([...diff.changed, ...diff.removed]), at: process.hrtime.bigint() };
    for (const listener of this.listeners) listener(change);
    return diff;
  }
}
