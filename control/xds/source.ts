// What the xDS server reads from: resources per type URL, as a given client should see them, and
// notifications when they change. The shared cache (cache.ts) serves the same resources to every
// client (the workload API); a per-client source (Envoy LDS/RDS/CDS/EDS for a given waypoint) can
// implement the same interface, and combineSources() serves several through one ADS server.
import type { XdsResource } from './resource';

/** Who is on the other end of a stream (from the first request's `node`, and the TLS peer). */
export interface ClientInfo {
  readonly nodeId: string;
  readonly cluster: string;
  /** node.metadata as plain JSON (google.protobuf.Struct decoded). */
  readonly metadata: Readonly<Record<string, unknown>>;
  /** The gRPC peer address (ip:port). */
  readonly peer: string;
  /** The node the stream's credential belongs to, when the server authenticates nodes. */
  readonly authenticatedNode?: string;
}

/** The client of a stream, from its first request's `node`. */
export function clientOf(
  node: { readonly id: string; readonly cluster: string; readonly metadata?: Readonly<Record<string, unknown>> | undefined } | undefined,
  peer: string,
  authenticatedNode?: string,
): ClientInfo {
  return {
    nodeId: node?.id ?? '',
    cluster: node?.cluster ?? '',
    metadata: node?.metadata ?? {},
    peer,
    ...(authenticatedNode !== undefined ? { authenticatedNode } : {}),
  };
}

export interface ResourceChange {
  readonly typeUrl: string;
  /**
   * Names whose resource changed, appeared or disappeared. Undefined: anything may have changed,
   * streams compare every resource (e.g. a per-client view was rebuilt).
   */
  readonly names?: ReadonlySet<string>;
  /** process.hrtime.bigint() when the change was made; the push-latency metric starts here. */
  readonly at: bigint;
}

export type ChangeListener = (change: ResourceChange) => void;

export interface ResourceSource {
  /** The type URLs this source serves. */
  readonly typeUrls: readonly string[];
  /** The resources of a type as this client should see them; undefined when the type is not served. */
  resources(typeUrl: string, client: ClientInfo): ReadonlyMap<string, XdsResource> | undefined;
  /** A label for response.system_version_info (debugging only; e.g. the store revision). */
  systemVersion(typeUrl: string): string;
  /** Subscribe to changes; returns the unsubscribe function. */
  onChange(listener: ChangeListener): () => void;
}

/** Serve several sources through one server; each type URL belongs to exactly one source. */
export function combineSources(sources: readonly ResourceSource[]): ResourceSource {
  const owner = new Map<string, ResourceSource>();
  for (const source of sources) {
    for (const typeUrl of source.typeUrls) {
      if (owner.has(typeUrl)) throw new Error(`two xDS resource sources serve ${typeUrl}; each type URL needs exactly one`);
      owner.set(typeUrl, source);
    }
  }
  return {
    typeUrls: [...owner.keys()],
    resources: (typeUrl, client) => owner.get(typeUrl)?.resources(typeUrl, client),
    systemVersion: (typeUrl) => owner.get(typeUrl)?.systemVersion(typeUrl) ?? '',
    onChange: (listener) => {
      const offs = sources.map((s) => s.onChange(listener));
      return () => offs.forEach((off) => off());
    },
  };
}
