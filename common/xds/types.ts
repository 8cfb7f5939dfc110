// What a delta ADS client subscribes to and what it keeps: per type URL, resource name -> version
// and decoded value. A type is described once (decoder + optional validator) and used to read its
// resources back with the right TypeScript type.

/** How to turn one type's encoded resources into values, and which ones to ask for. */
export interface ResourceType<T> {
  /** e.g. type.googleapis.com/nodemesh.workload.v1.Address */
  readonly typeUrl: string;
  /** Decode the Any's value. Throwing rejects the whole response (NACK). */
  decode(bytes: Uint8Array): T;
  /**
   * Check a decoded value. Return undefined when it is acceptable, else why not; a response with
   * any unacceptable resource is rejected whole (NACK) and the previous state is kept.
   */
  validate?(name: string, value: T): string | undefined;
}

/** A resource the client holds. */
export interface ResourceEntry<T> {
  readonly name: string;
  readonly version: string;
  readonly value: T;
}

/** What one accepted response changed for one type (delivered once per response). */
export interface ResourceChange<T> {
  readonly typeUrl: string;
  /** Added or changed resources, with their previous value when there was one. */
  readonly updated: ReadonlyArray<ResourceEntry<T> & { readonly previous?: T }>;
  /** Removed resources, with the value they had. */
  readonly removed: ReadonlyArray<{ readonly name: string; readonly previous: T }>;
  /** True for the first response of the type on a stream (the client is now in sync). */
  readonly firstOnStream: boolean;
}

/** Names to follow: every resource of the type, or the listed ones. */
export type Subscription = { readonly wildcard: true; readonly names?: readonly string[] } | { readonly wildcard: false; readonly names: readonly string[] };

export const WILDCARD_NAME = '*';
