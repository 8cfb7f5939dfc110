// The state of one delta xDS stream, without any I/O: which resources the client subscribed to
// (wildcard and by name, per type URL), which version of each it has been sent, and which
// responses are awaiting an ACK. Requests and cache changes go in; the responses to send come out
// of flush(). The gRPC layer (delta-server.ts) only moves bytes and schedules flushes.
//
// Protocol rules implemented here (xDS "incremental" variant):
// - The first request for a type with no names subscribes to the wildcard; "*" subscribes to it
//   explicitly and unsubscribing "*" ends it.
// - initial_resource_versions (first request of a type on a stream) says what the client already
//   has: only what differs is sent, and names it has that no longer exist come back in
//   removed_resources.
// - Every name in resource_names_subscribe is sent even if the client is believed to have it.
//   A name subscribed to that does not exist is reported once in removed_resources.
// - Every response carries a fresh nonce. A request whose response_nonce matches one of ours is
//   an ACK, or a NACK when error_detail is set. A NACKed version is not sent again (the client
//   keeps its previous version); the next different version is.
// - Changes are coalesced per type until the next flush; nothing is sent when nothing changed.
//   The first request of a type is always answered, with an empty response if nothing differs,
//   so the client knows it is in sync.
import type { DeltaDiscoveryRequest } from '../../api/gen/envoy/service/discovery/v3/discovery';
import { assertNodeBinding, type NodeBinding } from './node-binding';
import { XdsRequestError } from './request-error';
import type { XdsResource } from './resource';
import { clientOf, type ClientInfo, type ResourceChange, type ResourceSource } from './source';

export const WILDCARD = '*';

/** One response to send. */
export interface DeltaFrame {
  readonly typeUrl: string;
  readonly nonce: string;
  readonly systemVersionInfo: string;
  readonly resources: readonly XdsResource[];
  readonly removed: readonly string[];
  /** The earliest change this frame carries (process.hrtime.bigint()), for the push-latency metric. */
  readonly changeAt: bigint | undefined;
}

export type AckOutcome =
  | { readonly kind: 'ack'; readonly typeUrl: string; readonly nonce: string; readonly sentAt: bigint }
  | {
      readonly kind: 'nack';
      readonly typeUrl: string;
      readonly nonce: string;
      readonly sentAt: bigint;
      readonly code: number;
      readonly message: string;
      /** name@version of the rejected resources (and the removals) in that response. */
      readonly rejected: readonly string[];
    }
  /** A response_nonce this stream does not know (already answered, or from another stream). */
  | { readonly kind: 'unknown-nonce'; readonly typeUrl: string; readonly nonce: string };

export interface RequestResult {
  /** ACK/NACK information when the request carried a response_nonce. */
  readonly outcome?: AckOutcome;
  /** True when this was the stream's first request of this type. */
  readonly firstOfType: boolean;
}

// A name the client was told does not exist (so it is not reported again).
const ABSENT = '\0absent';

interface TypeState {
  wildcard: boolean;
  readonly names: Set<string>;
  /** name -> version the client has (or ABSENT). */
  readonly sent: Map<string, string>;
  /** Names to compare on the next flush, or 'all'. */
  dirty: Set<string> | 'all' | undefined;
  dirtyAt: bigint | undefined;
  /** Answer the next flush even when nothing differs (first request of the type). */
  mustAnswer: boolean;
  /** The client's answer to the last response of this type it answered: a NACK until a later ACK. */
  lastNack?: { readonly code: number; readonly message: string };
}

/** One type of a delta stream as the config dump shows it. */
export interface DeltaTypeView {
  readonly wildcard: boolean;
  readonly names: string[];
  /** Resources the client has been sent (and not told removed). */
  readonly sent: number;
  /** Responses of this type sent and not yet ACKed or NACKed. */
  readonly unacked: number;
  /** The client rejected the last response of this type it answered (it keeps its previous versions). */
  readonly nacked?: { readonly code: number; readonly message: string };
}

interface InFlight {
  readonly typeUrl: string;
  readonly sentAt: bigint;
  readonly resources: readonly XdsResource[];
  readonly removed: readonly string[];
}

export interface DeltaStateOptions {
  /** Split responses so that each carries at most about this many bytes of resources. */
  readonly maxFrameBytes?: number;
  /** How many unacknowledged responses to remember (older ones are forgotten). */
  readonly maxInFlight?: number;
}

const EMPTY: ReadonlyMap<string, XdsResource> = new Map();

export class DeltaStreamState {
  private readonly types = new Map<string, TypeState>();
  private readonly inFlight = new Map<string, InFlight>();
  private nonceCounter = 0;
  private clientInfo: ClientInfo | undefined;
  private readonly maxFrameBytes: number;
  private readonly maxInFlight: number;

  constructor(
    private readonly source: ResourceSource,
    private readonly peer: string,
    options: DeltaStateOptions = {},
    private readonly binding?: NodeBinding,
  ) {
    this.maxFrameBytes = options.maxFrameBytes ?? 1 << 20;
    this.maxInFlight = options.maxInFlight ?? 256;
  }

  /** The client, known from the first request's node. */
  get client(): ClientInfo | undefined {
    return this.clientInfo;
  }

  /** Type URLs this stream subscribes to. */
  subscribedTypes(): string[] {
    return [...this.types.keys()];
  }

  /** What the stream has subscribed to and been sent, for the admin/config dump. */
  describe(typeUrl: string): DeltaTypeView | undefined {
    const t = this.types.get(typeUrl);
    if (!t) return undefined;
    let unacked = 0;
    for (const f of this.inFlight.values()) if (f.typeUrl === typeUrl) unacked++;
    return {
      wildcard: t.wildcard,
      names: [...t.names],
      sent: [...t.sent.values()].filter((v) => v !== ABSENT).length,
      unacked,
      ...(t.lastNack ? { nacked: t.lastNack } : {}),
    };
  }

  handleRequest(request: DeltaDiscoveryRequest): RequestResult {
    if (!this.clientInfo) {
      if (this.binding) assertNodeBinding(request.node, this.binding.caller, this.binding.waypointPlacement);
      this.clientInfo = clientOf(request.node, this.peer, this.binding?.caller.node);
    }
    const typeUrl = request.typeUrl;
    if (!typeUrl) throw new XdsRequestError('a DeltaDiscoveryRequest without type_url (resource locators are not supported)');

    let outcome: AckOutcome | undefined;
    if (request.responseNonce) outcome = this.settle(typeUrl, request);

    let state = this.types.get(typeUrl);
    const firstOfType = !state;
    if (!state) {
      state = { wildcard: false, names: new Set(), sent: new Map(), dirty: undefined, dirtyAt: undefined, mustAnswer: true };
      this.types.set(typeUrl, state);
      // Legacy wildcard: the first request of a type that names nothing.
      if (request.resourceNamesSubscribe.length === 0) state.wildcard = true;
      for (const [name, version] of Object.entries(request.initialResourceVersions)) state.sent.set(name, version);
    }
    const initial = firstOfType ? request.initialResourceVersions : undefined;

    let changed = firstOfType;
    for (const name of request.resourceNamesSubscribe) {
      changed = true;
      if (name === WILDCARD) {
        state.wildcard = true;
        continue;
      }
      state.names.add(name);
      // Always (re)send a subscribed name, unless the client just told us which version it has.
      if (!initial || !(name in initial)) state.sent.delete(name);
    }
    for (const name of request.resourceNamesUnsubscribe) {
      changed = true;
      if (name === WILDCARD) {
        state.wildcard = false;
        for (const sentName of [...state.sent.keys()]) if (!state.names.has(sentName)) state.sent.delete(sentName);
        continue;
      }
      state.names.delete(name);
      if (!state.wildcard) state.sent.delete(name);
    }
    if (changed) state.dirty = 'all';
    return { outcome, firstOfType };
  }

  /**
   * Note a change in the source. Returns true when it concerns this stream (a flush is due).
   */
  noteChange(change: ResourceChange): boolean {
    const state = this.types.get(change.typeUrl);
    if (!state || state.dirty === 'all') {
      if (state) state.dirtyAt = minTime(state.dirtyAt, change.at);
      return state !== undefined;
    }
    if (!change.names) {
      state.dirty = 'all';
    } else {
      let dirty: Set<string> | undefined = state.dirty;
      for (const name of change.names) {
        if (state.wildcard || state.names.has(name)) (dirty ??= new Set()).add(name);
      }
      if (!dirty) return false;
      state.dirty = dirty;
    }
    state.dirtyAt = minTime(state.dirtyAt, change.at);
    return true;
  }

  /** True when a flush would have something to compare. */
  get pending(): boolean {
    for (const state of this.types.values()) if (state.dirty !== undefined || state.mustAnswer) return true;
    return false;
  }

  /** Compute the responses for everything that changed since the last flush. */
  flush(now: bigint = process.hrtime.bigint()): DeltaFrame[] {
    const frames: DeltaFrame[] = [];
    for (const [typeUrl, state] of this.types) {
      if (state.dirty === undefined && !state.mustAnswer) continue;
      const { resources, removed } = this.diff(typeUrl, state);
      const changeAt = state.dirtyAt;
      const mustAnswer = state.mustAnswer;
      state.dirty = undefined;
      state.dirtyAt = undefined;
      state.mustAnswer = false;
      if (resources.length === 0 && removed.length === 0 && !mustAnswer) continue;
      this.split(typeUrl, resources, removed, changeAt, now, frames);
    }
    return frames;
  }

  private diff(typeUrl: string, state: TypeState): { resources: XdsResource[]; removed: string[] } {
    const view = (this.clientInfo && this.source.resources(typeUrl, this.clientInfo)) || EMPTY;
    const resources: XdsResource[] = [];
    const removed: string[] = [];
    const consider = (name: string): void => {
      if (!state.wildcard && !state.names.has(name)) return;
      const resource = view.get(name);
      const had = state.sent.get(name);
      if (resource) {
        if (had !== resource.version) {
          resources.push(resource);
          state.sent.set(name, resource.version);
        }
        return;
      }
      if (had === ABSENT) return;
      if (had !== undefined || state.names.has(name)) {
        removed.push(name);
        if (state.names.has(name)) state.sent.set(name, ABSENT);
        else state.sent.delete(name);
      }
    };
    const dirty = state.dirty;
    if (dirty !== undefined && dirty !== 'all') {
      for (const name of dirty) consider(name);
      return { resources, removed };
    }
    // Compare everything: what exists, what the client has, what it asked for.
    if (state.wildcard) for (const name of view.keys()) consider(name);
    else for (const name of state.names) if (view.has(name)) consider(name);
    for (const name of [...state.sent.keys()]) if (!view.has(name)) consider(name);
    for (const name of state.names) if (!view.has(name) && !state.sent.has(name)) consider(name);
    return { resources, removed };
  }

  private split(typeUrl: string, resources: XdsResource[], removed: string[], changeAt: bigint | undefined, now: bigint, out: DeltaFrame[]): void {
    const systemVersionInfo = this.source.systemVersion(typeUrl);
    let start = 0;
    let first = true;
    while (first || start < resources.length) {
      let end = start;
      let bytes = 0;
      while (end < resources.length && (end === start || bytes + resources[end]!.value.length <= this.maxFrameBytes)) {
        bytes += resources[end]!.value.length;
        end++;
      }
      const frame: DeltaFrame = {
        typeUrl,
        nonce: (++this.nonceCounter).toString(36),
        systemVersionInfo,
        resources: resources.slice(start, end),
        removed: first ? removed : [],
        changeAt,
      };
      this.remember(frame, now);
      out.push(frame);
      first = false;
      start = end;
    }
  }

  private remember(frame: DeltaFrame, now: bigint): void {
    this.inFlight.set(frame.nonce, { typeUrl: frame.typeUrl, sentAt: now, resources: frame.resources, removed: frame.removed });
    if (this.inFlight.size > this.maxInFlight) {
      const oldest = this.inFlight.keys().next().value;
      if (oldest !== undefined) this.inFlight.delete(oldest);
    }
  }

  private settle(typeUrl: string, request: DeltaDiscoveryRequest): AckOutcome {
    const nonce = request.responseNonce;
    const sent = this.inFlight.get(nonce);
    if (!sent || sent.typeUrl !== typeUrl) return { kind: 'unknown-nonce', typeUrl, nonce };
    this.inFlight.delete(nonce);
    const error = request.errorDetail;
    const state = this.types.get(typeUrl);
    if (state) state.lastNack = error ? { code: error.code, message: error.message } : undefined;
    if (!error) return { kind: 'ack', typeUrl, nonce, sentAt: sent.sentAt };
    // The client keeps its previous versions. Our record still says it has the rejected ones, so
    // they are not sent again; a newer version of the same resource is.
    const rejected = [...sent.resources.map((r) => `${r.name}@${r.version}`), ...sent.removed.map((n) => `-${n}`)];
    return { kind: 'nack', typeUrl, nonce, sentAt: sent.sentAt, code: error.code, message: error.message, rejected };
  }
}

function minTime(a: bigint | undefined, b: bigint): bigint {
  return a === undefined || b < a ? b : a;
}
