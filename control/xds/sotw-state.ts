// The state of one state-of-the-world (SotW) ADS stream, without I/O: per type URL, what the client
// subscribed to (wildcard or names), what it was last sent, what it acknowledged and what it
// rejected. Requests and source changes go in; flush() gives the responses to write.
//
// Protocol rules implemented here (xDS "state of the world" variant, aggregated):
// - The first request of a type with no names is a wildcard subscription (LDS/CDS); "*" is an
//   explicit wildcard. Otherwise resource_names is the complete set of names wanted (EDS/RDS).
// - Every response carries a fresh nonce and a version_info that is a hash of exactly what it
//   carries (names and resource versions), so equal content means equal version.
// - A request whose response_nonce is not the latest one sent for its type is stale and ignored.
//   With the latest nonce it is an ACK, or a NACK when error_detail is set: the client keeps its
//   previous config, the rejected version is remembered and never sent again; the next different
//   content is.
// - Nothing is sent when the content for the client has not changed, except that the first request
//   of a type on a stream is always answered (possibly empty), so the client knows it is in sync.
// - A change of resource_names (unsubscribe, resubscribe) changes the content, so it is answered.
// - Types are flushed in make-before-break order: clusters, endpoints, listeners, routes, others.
import { createHash } from 'node:crypto';
import type { DiscoveryRequest } from '../../api/gen/envoy/service/discovery/v3/discovery';
import { assertNodeBinding, type NodeBinding } from './node-binding';
import { XdsRequestError } from './request-error';
import type { XdsResource } from './resource';
import { clientOf, type ClientInfo, type ResourceChange, type ResourceSource } from './source';

export const SOTW_WILDCARD = '*';

const ORDER = [
  'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  'type.googleapis.com/envoy.config.listener.v3.Listener',
  'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
];

/** One response to write. */
export interface SotwFrame {
  readonly typeUrl: string;
  readonly versionInfo: string;
  readonly nonce: string;
  readonly resources: readonly XdsResource[];
  /** The earliest change this frame carries (process.hrtime.bigint()), for the push-latency metric. */
  readonly changeAt: bigint | undefined;
}

export type SotwOutcome =
  | { readonly kind: 'ack'; readonly typeUrl: string; readonly version: string; readonly sentAt: bigint }
  | {
      readonly kind: 'nack';
      readonly typeUrl: string;
      readonly version: string;
      readonly sentAt: bigint;
      readonly code: number;
      readonly message: string;
      /** The version the client keeps (its last ACKed one; '' when it never ACKed). */
      readonly keeps: string;
    }
  | { readonly kind: 'stale'; readonly typeUrl: string; readonly nonce: string };

/** What was sent, acknowledged or rejected for one type, for config dumps. */
export interface SotwTypeView {
  readonly wildcard: boolean;
  readonly names: readonly string[];
  readonly sent?: { readonly version: string; readonly nonce: string; readonly resources: readonly XdsResource[] };
  readonly acked?: { readonly version: string; readonly resources: readonly XdsResource[] };
  readonly rejected?: { readonly version: string; readonly code: number; readonly message: string };
}

interface Sent {
  readonly version: string;
  readonly nonce: string;
  readonly at: bigint;
  readonly resources: readonly XdsResource[];
}

interface TypeState {
  wildcard: boolean;
  names: Set<string>;
  sent: Sent | undefined;
  acked: { version: string; resources: readonly XdsResource[] } | undefined;
  rejected: { version: string; code: number; message: string } | undefined;
  dirty: boolean;
  dirtyAt: bigint | undefined;
  mustAnswer: boolean;
}

// The version of a wildcard view, cached per view map, so every client of the same view shares the
// work. Only for maps their source promises never to change (a new revision is a new map).
const viewVersions = new WeakMap<ReadonlyMap<string, XdsResource>, string>();
const immutableViews = new WeakSet<ReadonlyMap<string, XdsResource>>();

/** Promise that this map of resources will never change (lets streams cache its version). */
export function markImmutableView(view: ReadonlyMap<string, XdsResource>): void {
  immutableViews.add(view);
}

function versionOfList(resources: readonly XdsResource[]): string {
  const h = createHash('sha256');
  for (const r of resources) h.update(r.name).update('\0').update(r.version).update('\n');
  return h.digest('base64url').slice(0, 16);
}

export class SotwStreamState {
  private readonly types = new Map<string, TypeState>();
  private nonceCounter = 0;
  private clientInfo: ClientInfo | undefined;

  constructor(
    private readonly source: ResourceSource,
    private readonly peer: string,
    private readonly binding?: NodeBinding,
  ) {}

  get client(): ClientInfo | undefined {
    return this.clientInfo;
  }

  subscribedTypes(): string[] {
    return [...this.types.keys()];
  }

  describe(typeUrl: string): SotwTypeView | undefined {
    const t = this.types.get(typeUrl);
    if (!t) return undefined;
    return {
      wildcard: t.wildcard,
      names: [...t.names],
      ...(t.sent ? { sent: { version: t.sent.version, nonce: t.sent.nonce, resources: t.sent.resources } } : {}),
      ...(t.acked ? { acked: t.acked } : {}),
      ...(t.rejected ? { rejected: t.rejected } : {}),
    };
  }

  /** Feed a request; returns the ACK/NACK outcome when it answered a response. */
  handleRequest(request: DiscoveryRequest): SotwOutcome | undefined {
    if (!this.clientInfo) {
      if (this.binding) assertNodeBinding(request.node, this.binding.caller, this.binding.waypointPlacement);
      this.clientInfo = clientOf(request.node, this.peer, this.binding?.caller.node);
    }
    const typeUrl = request.typeUrl;
    if (!typeUrl) throw new XdsRequestError('a DiscoveryRequest without type_url; on an aggregated stream every request must name its type');
    let state = this.types.get(typeUrl);
    let outcome: SotwOutcome | undefined;
    if (!state) {
      state = { wildcard: false, names: new Set(), sent: undefined, acked: undefined, rejected: undefined, dirty: true, dirtyAt: undefined, mustAnswer: true };
      this.types.set(typeUrl, state);
      state.wildcard = request.resourceNames.length === 0;
    } else if (request.responseNonce === '') {
      // The client started over for this type (e.g. after its own restart of the watch).
      state.mustAnswer = true;
      state.dirty = true;
    } else if (!state.sent || request.responseNonce !== state.sent.nonce) {
      return { kind: 'stale', typeUrl, nonce: request.responseNonce };
    } else if (request.errorDetail) {
      const sent = state.sent;
      state.rejected = { version: sent.version, code: request.errorDetail.code, message: request.errorDetail.message };
      outcome = {
        kind: 'nack',
        typeUrl,
        version: sent.version,
        sentAt: sent.at,
        code: request.errorDetail.code,
        message: request.errorDetail.message,
        keeps: state.acked?.version ?? '',
      };
    } else {
      state.acked = { version: state.sent.version, resources: state.sent.resources };
      outcome = { kind: 'ack', typeUrl, version: state.sent.version, sentAt: state.sent.at };
    }
    // The names of this request are the complete subscription.
    const wildcard = request.resourceNames.includes(SOTW_WILDCARD) || (state.wildcard && request.resourceNames.length === 0);
    const names = new Set(request.resourceNames.filter((n) => n !== SOTW_WILDCARD));
    if (wildcard !== state.wildcard || !sameSet(names, state.names)) {
      state.wildcard = wildcard;
      state.names = names;
      state.dirty = true;
    }
    return outcome;
  }

  /** Note a change in the source; true when this stream has to look at it. */
  noteChange(change: ResourceChange): boolean {
    const state = this.types.get(change.typeUrl);
    if (!state) return false;
    if (!state.wildcard && change.names) {
      let hit = false;
      for (const n of change.names) if (state.names.has(n)) hit = true;
      if (!hit) return false;
    }
    state.dirty = true;
    state.dirtyAt = state.dirtyAt === undefined || change.at < state.dirtyAt ? change.at : state.dirtyAt;
    return true;
  }

  get pending(): boolean {
    for (const t of this.types.values()) if (t.dirty || t.mustAnswer) return true;
    return false;
  }

  flush(now: bigint = process.hrtime.bigint()): SotwFrame[] {
    const frames: SotwFrame[] = [];
    const order = [...this.types.keys()].sort((a, b) => rank(a) - rank(b));
    for (const typeUrl of order) {
      const state = this.types.get(typeUrl)!;
      if (!state.dirty && !state.mustAnswer) continue;
      const mustAnswer = state.mustAnswer;
      const changeAt = state.dirtyAt;
      state.dirty = false;
      state.mustAnswer = false;
      state.dirtyAt = undefined;
      const { resources, version } = this.content(typeUrl, state);
      if (!mustAnswer && (version === state.sent?.version || version === state.rejected?.version)) continue;
      const nonce = (++this.nonceCounter).toString(36);
      state.sent = { version, nonce, at: now, resources };
      frames.push({ typeUrl, versionInfo: version, nonce, resources, changeAt });
    }
    return frames;
  }

  private content(typeUrl: string, state: TypeState): { resources: XdsResource[]; version: string } {
    const view = (this.clientInfo && this.source.resources(typeUrl, this.clientInfo)) || new Map<string, XdsResource>();
    if (state.wildcard) {
      // Names asked for on top of the wildcard are in the view already, or do not exist.
      const resources = [...view.values()];
      if (!immutableViews.has(view)) return { resources, version: versionOfList(resources) };
      let version = viewVersions.get(view);
      if (version === undefined) {
        version = versionOfList(resources);
        viewVersions.set(view, version);
      }
      return { resources, version };
    }
    const resources: XdsResource[] = [];
    for (const name of [...state.names].sort()) {
      const r = view.get(name);
      if (r) resources.push(r);
    }
    return { resources, version: versionOfList(resources) };
  }
}

function rank(typeUrl: string): number {
  const i = ORDER.indexOf(typeUrl);
  return i < 0 ? ORDER.length : i;
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}
