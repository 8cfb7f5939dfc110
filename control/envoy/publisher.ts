// Serves the Envoy types to xDS streams: translates the store once per revision (bursts of writes
// coalesced), encodes every resource once (reusing the previous encoding when its bytes did not
// change), and answers each client with its view — a filter over the shared encoded resources
// chosen by the client's node (a waypoint's listeners; a proxyless gRPC client's api_listeners, and
// routes in the form every gRPC version accepts).
// Implements the xDS ResourceSource, so the delta and the SotW ADS servers both serve it.
import { Cluster } from '../../api/gen/envoy/config/cluster/v3/cluster';
import { ClusterLoadAssignment } from '../../api/gen/envoy/config/endpoint/v3/endpoint';
import { Listener } from '../../api/gen/envoy/config/listener/v3/listener';
import { RouteConfiguration } from '../../api/gen/envoy/config/route/v3/route';
import type { Logger } from '../../common/log';
import { NewWarnings, StoreFollower } from '../store/follow';
import type { ConfigStore, Snapshot } from '../store/store';
import { xdsResource, type XdsResource } from '../xds/resource';
import { claimedWaypoint } from '../xds/node-binding';
import { markImmutableView } from '../xds/sotw-state';
import type { ChangeListener, ClientInfo, ResourceSource } from '../xds/source';
import { DEFAULT_ENVOY_OPTIONS, type EnvoyTranslateOptions } from './model';
import { forProxylessClients } from './proxyless';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, ENVOY_TYPE_URLS, LISTENER_TYPE_URL, ROUTE_TYPE_URL } from './names';
import { PROXYLESS_VIEW, ServiceOutputCache, resourceNameOf, translateEnvoy, waypointView, type ClientView, type EnvoyConfig } from './translate';

/** Which view a client gets, from its node id (`waypoint~<ip>~<name>.<ns>~…`) or metadata. */
export function viewOfClient(client: Pick<ClientInfo, 'nodeId' | 'metadata'>): string {
  const waypoint = claimedWaypoint({ id: client.nodeId, metadata: client.metadata });
  return waypoint ? waypointView(waypoint.namespace, waypoint.name) : PROXYLESS_VIEW;
}

type Pool = Map<string, XdsResource>;

interface Encoded {
  readonly revision: number;
  readonly pools: Map<string, Pool>;
  /** The route pool as proxyless gRPC clients get it (see proxyless.ts). */
  readonly proxylessRoutes: Pool;
  readonly views: Map<string, ClientView>;
  readonly sharedClusters: ReadonlyMap<string, XdsResource>;
  readonly warnings: readonly string[];
}

const CODECS: Record<string, { encode(m: never): { finish(): Uint8Array } }> = {
  [LISTENER_TYPE_URL]: Listener,
  [ROUTE_TYPE_URL]: RouteConfiguration,
  [CLUSTER_TYPE_URL]: Cluster,
  [ENDPOINT_TYPE_URL]: ClusterLoadAssignment,
};

function mapsOf(config: EnvoyConfig): Record<string, Map<string, unknown>> {
  return { [LISTENER_TYPE_URL]: config.listeners, [ROUTE_TYPE_URL]: config.routes, [CLUSTER_TYPE_URL]: config.clusters, [ENDPOINT_TYPE_URL]: config.endpoints };
}

// The encoding of a message object, for translations that reuse message objects (cached Services).
const encodedMessages = new WeakMap<object, XdsResource>();

/**
 * Encode a translation. A message object encoded before is not encoded again; unchanged bytes
 * reuse the previous XdsResource (and its cached records), so versions stay stable.
 */
export function encodeEnvoy(config: EnvoyConfig, previous?: Encoded): Encoded {
  const pools = new Map<string, Pool>();
  for (const [typeUrl, messages] of Object.entries(mapsOf(config))) {
    const before = previous?.pools.get(typeUrl);
    const pool: Pool = new Map();
    for (const [key, message] of messages) pool.set(key, encodeOne(typeUrl, key, message as object, before));
    pools.set(typeUrl, pool);
  }
  // Proxyless gRPC clients get routes in the form every gRPC version accepts; most routes need no
  // rewrite and share the Envoy clients' encoding.
  const routePool = pools.get(ROUTE_TYPE_URL)!;
  const proxylessRoutes: Pool = new Map();
  for (const [key, message] of config.routes) {
    const legacy = forProxylessClients(message);
    proxylessRoutes.set(key, legacy === message ? routePool.get(key)! : encodeOne(ROUTE_TYPE_URL, key, legacy, previous?.proxylessRoutes));
  }
  const clusters = pools.get(CLUSTER_TYPE_URL)!;
  const sharedClusters = new Map<string, XdsResource>();
  for (const name of config.sharedClusters) sharedClusters.set(name, clusters.get(name)!);
  return { revision: config.revision, pools, proxylessRoutes, views: config.views, sharedClusters, warnings: config.warnings };
}

/** One message's resource: reused when this object was encoded before or its bytes did not change. */
function encodeOne(typeUrl: string, key: string, message: object, before: Pool | undefined): XdsResource {
  const known = encodedMessages.get(message);
  if (known && known.name === resourceNameOf(key)) return known;
  const bytes = CODECS[typeUrl]!.encode(message as never).finish();
  const old = before?.get(key);
  const resource = old && Buffer.compare(old.value, bytes) === 0 ? old : xdsResource(typeUrl, resourceNameOf(key), bytes);
  encodedMessages.set(message, resource);
  return resource;
}

/** A read-only map: `own` entries over `base`, without copying `base`. */
class LayeredMap implements ReadonlyMap<string, XdsResource> {
  constructor(
    private readonly base: ReadonlyMap<string, XdsResource>,
    private readonly own: ReadonlyMap<string, XdsResource>,
  ) {}
  get size(): number {
    return this.base.size + this.own.size;
  }
  get(key: string): XdsResource | undefined {
    return this.own.get(key) ?? this.base.get(key);
  }
  has(key: string): boolean {
    return this.own.has(key) || this.base.has(key);
  }
  *entries(): MapIterator<[string, XdsResource]> {
    yield* this.base.entries();
    yield* this.own.entries();
  }
  *keys(): MapIterator<string> {
    for (const [k] of this.entries()) yield k;
  }
  *values(): MapIterator<XdsResource> {
    for (const [, v] of this.entries()) yield v;
  }
  [Symbol.iterator](): MapIterator<[string, XdsResource]> {
    return this.entries();
  }
  forEach(cb: (value: XdsResource, key: string, map: ReadonlyMap<string, XdsResource>) => void): void {
    for (const [k, v] of this.entries()) cb(v, k, this);
  }
}

export interface EnvoyPublisherOptions {
  readonly logger: Logger;
  readonly translate?: EnvoyTranslateOptions;
}

export interface EnvoyTranslationReport {
  readonly revision: number;
  readonly millis: number;
  readonly counts: Record<string, number>;
  readonly views: number;
  readonly warnings: readonly string[];
}

const EMPTY: ReadonlyMap<string, XdsResource> = new Map();

export class EnvoyPublisher implements ResourceSource {
  static readonly TYPE_URLS = ENVOY_TYPE_URLS;
  readonly typeUrls = ENVOY_TYPE_URLS;
  private current: Encoded | undefined;
  private viewCache = new Map<string, Map<string, ReadonlyMap<string, XdsResource>>>();
  private readonly listeners = new Set<ChangeListener>();
  private readonly follower: StoreFollower;
  private readonly warnings: NewWarnings;
  private report: EnvoyTranslationReport | undefined;
  private readonly serviceCache = new ServiceOutputCache();

  private store: Pick<ConfigStore, 'snapshot' | 'watch'> | undefined;

  /** `store` may be given later, to start() (a control-plane component only has it then). */
  constructor(
    store: Pick<ConfigStore, 'snapshot' | 'watch'> | undefined,
    private readonly options: EnvoyPublisherOptions,
  ) {
    this.store = store;
    this.follower = new StoreFollower(
      () => this.publish(this.store!.snapshot()),
      (err) => options.logger.error({ err }, 'Envoy xDS translation failed; clients keep the previous configuration'),
    );
    this.warnings = new NewWarnings(options.logger);
  }

  start(store?: Pick<ConfigStore, 'snapshot' | 'watch'>): void {
    if (this.follower.following) return;
    if (store) this.store = store;
    const s = this.store;
    if (!s) throw new Error('the Envoy xDS publisher has no config store to translate');
    this.follower.start(s);
  }

  stop(): void {
    this.follower.stop();
  }

  get lastTranslation(): EnvoyTranslationReport | undefined {
    return this.report;
  }

  resources(typeUrl: string, client: ClientInfo): ReadonlyMap<string, XdsResource> | undefined {
    if (!this.typeUrls.includes(typeUrl)) return undefined;
    return this.viewFor(viewOfClient(client), typeUrl);
  }

  systemVersion(_typeUrl?: string): string {
    return String(this.current?.revision ?? 0);
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The resources of a type in a view (cached until the next translation). */
  viewFor(view: string, typeUrl: string): ReadonlyMap<string, XdsResource> {
    const cur = this.current;
    if (!cur) return EMPTY;
    let byType = this.viewCache.get(view);
    if (!byType) this.viewCache.set(view, (byType = new Map()));
    let map = byType.get(typeUrl);
    if (map) return map;
    const v = cur.views.get(view) ?? { listeners: new Set<string>(), clusters: new Set<string>() };
    const pool = cur.pools.get(typeUrl)!;
    if (typeUrl === LISTENER_TYPE_URL) {
      const own = new Map<string, XdsResource>();
      for (const key of v.listeners) own.set(resourceNameOf(key), pool.get(key)!);
      map = own;
    } else if (typeUrl === CLUSTER_TYPE_URL) {
      if (v.clusters.size === 0) map = cur.sharedClusters;
      else {
        const own = new Map<string, XdsResource>();
        for (const name of v.clusters) own.set(name, pool.get(name)!);
        map = new LayeredMap(cur.sharedClusters, own);
      }
    } else if (typeUrl === ROUTE_TYPE_URL && view === PROXYLESS_VIEW) {
      map = cur.proxylessRoutes;
    } else {
      map = pool;
    }
    markImmutableView(map);
    byType.set(typeUrl, map);
    return map;
  }

  /** Translate the store's current snapshot and notify streams of what changed; returns its revision. */
  publish(snapshot: Snapshot): number {
    const started = process.hrtime.bigint();
    const config = translateEnvoy(snapshot, this.options.translate ?? DEFAULT_ENVOY_OPTIONS, this.serviceCache);
    const previous = this.current;
    const next = encodeEnvoy(config, previous);
    this.current = next;
    this.viewCache = new Map();
    const at = process.hrtime.bigint();
    for (const typeUrl of this.typeUrls) {
      const names = changedNames(typeUrl, previous, next);
      if (names.size === 0) continue;
      for (const listener of this.listeners) listener({ typeUrl, names, at });
    }
    const millis = Number(process.hrtime.bigint() - started) / 1e6;
    const counts: Record<string, number> = {};
    for (const [typeUrl, pool] of next.pools) counts[typeUrl] = pool.size;
    this.report = { revision: snapshot.revision, millis, counts, views: next.views.size, warnings: next.warnings };
    this.warnings.log(next.warnings, snapshot.revision);
    this.options.logger.debug({ revision: snapshot.revision, millis: Math.round(millis * 10) / 10 }, 'Envoy xDS translated');
    return snapshot.revision;
  }
}

/** Resource names whose bytes changed, that appeared or vanished, or whose view membership changed. */
function changedNames(typeUrl: string, before: Encoded | undefined, after: Encoded): Set<string> {
  const names = new Set<string>();
  const a = before?.pools.get(typeUrl) ?? new Map<string, XdsResource>();
  const b = after.pools.get(typeUrl)!;
  for (const [key, r] of b) if (a.get(key) !== r) names.add(r.name);
  for (const [key, r] of a) if (!b.has(key)) names.add(r.name);
  if (typeUrl === ROUTE_TYPE_URL) {
    const pa = before?.proxylessRoutes ?? new Map<string, XdsResource>();
    for (const [key, r] of after.proxylessRoutes) if (pa.get(key) !== r) names.add(r.name);
  }
  if (typeUrl === LISTENER_TYPE_URL || typeUrl === CLUSTER_TYPE_URL) {
    const pick = (v: ClientView) => (typeUrl === LISTENER_TYPE_URL ? v.listeners : v.clusters);
    const viewNames = new Set([...(before?.views.keys() ?? []), ...after.views.keys()]);
    for (const view of viewNames) {
      const x = before?.views.get(view);
      const y = after.views.get(view);
      const xs = x ? pick(x) : new Set<string>();
      const ys = y ? pick(y) : new Set<string>();
      for (const k of xs) if (!ys.has(k)) names.add(resourceNameOf(k));
      for (const k of ys) if (!xs.has(k)) names.add(resourceNameOf(k));
    }
  }
  return names;
}
