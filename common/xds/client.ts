// A delta ADS client (envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources)
// over @grpc/grpc-js, shared by the node proxy (workload API) and the waypoint (Envoy types).
//
// - One stream carries every subscribed type. Each response is decoded and validated whole, then
//   ACKed with its nonce, or NACKed with error_detail while the last good state is kept.
// - Listeners hear one change per accepted response (added/changed/removed, with previous values).
// - When the stream fails the client reconnects with exponential backoff and jitter, presenting
//   what it holds in initial_resource_versions, so the server resends only what changed.
// - status() says whether the stream is up and whether every type has been received at least
//   once (readiness: a proxy is ready once it has a first complete view of the mesh, and stays
//   ready on its last good state while the control plane is away).
import * as grpc from '@grpc/grpc-js';
import { AggregatedDiscoveryServiceClient } from '../../api/gen/envoy/service/discovery/v3/ads';
import { DeltaDiscoveryRequest, type DeltaDiscoveryResponse } from '../../api/gen/envoy/service/discovery/v3/discovery';
import { createLogger, type Logger } from '../log';
import { backoffDelay, type BackoffOptions } from './backoff';
import { ResourceSet } from './resource-set';
import { WILDCARD_NAME, type ResourceChange, type ResourceEntry, type ResourceType, type Subscription } from './types';

/** gRPC status INVALID_ARGUMENT, carried in a NACK's error_detail. */
const NACK_CODE = grpc.status.INVALID_ARGUMENT;

export type XdsCredentials =
  | { readonly kind: 'plaintext' }
  | {
      readonly kind: 'tls';
      /** PEM roots that sign the control plane's serving certificate. */
      readonly trustBundlePem: string;
      /** Client certificate chain and key, when the server asks for one. */
      readonly certChainPem?: string;
      readonly privateKeyPem?: string;
      /** Name to verify in the server certificate when it differs from the target's host. */
      readonly serverName?: string;
    };

export interface XdsNode {
  readonly id: string;
  readonly cluster?: string;
  readonly metadata?: Readonly<Record<string, unknown>>;
}

export interface DeltaXdsClientOptions {
  /** host:port of the control plane. */
  readonly target: string;
  readonly credentials: XdsCredentials;
  readonly node: XdsNode;
  /** The types to follow; wildcard unless a subscription says otherwise. */
  readonly types: ReadonlyArray<{ readonly type: ResourceType<unknown>; readonly subscription?: Subscription }>;
  readonly backoff?: BackoffOptions;
  /** Call metadata for each new stream (e.g. a node credential). */
  readonly callMetadata?: () => grpc.Metadata | Promise<grpc.Metadata>;
  /** Override channel options, e.g. `grpc.keepalive_time_ms` (defaults: XDS_CLIENT_KEEPALIVE). */
  readonly channelOptions?: grpc.ChannelOptions;
  readonly logger?: Logger;
}

export interface XdsClientStatus {
  readonly target: string;
  /** A stream is open and has delivered at least one response. */
  readonly connected: boolean;
  /** Every type has been received at least once (on this or an earlier stream). */
  readonly synced: boolean;
  /** Types still waiting for their first response. */
  readonly waitingFor: readonly string[];
  /** Streams opened so far (1 + reconnects). */
  readonly streams: number;
  readonly acks: number;
  readonly nacks: number;
  readonly lastError?: string;
  readonly lastNack?: { readonly typeUrl: string; readonly message: string; readonly at: string };
  readonly connectedSince?: string;
  readonly disconnectedSince?: string;
}

export type ChangeListener = (change: ResourceChange<unknown>) => void;
export type StatusListener = (status: XdsClientStatus) => void;
export type ResponseListener = (response: DeltaDiscoveryResponse, outcome: { accepted: boolean; message?: string }) => void;

interface TypeEntry {
  readonly set: ResourceSet<unknown>;
  wildcard: boolean;
  readonly names: Set<string>;
  /** Received at least once on the current stream. */
  seenOnStream: boolean;
  /** Received at least once ever. */
  seenEver: boolean;
}

type Stream = grpc.ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;

/**
 * HTTP/2 keepalive towards the control plane (docs/xds.md, "Keepalive"): a PING every `timeMs`,
 * the connection is declared dead when its ACK takes longer than `timeoutMs`. A vanished control
 * plane is noticed within timeMs + timeoutMs (50 s); a control plane that merely stalls (a blocked
 * event loop, a long GC) for less than timeoutMs keeps the stream. Same values as the server's
 * (XDS_SERVER_KEEPALIVE in control/grpc.ts), whose grpc-js never refuses pings at this rate.
 */
export const XDS_CLIENT_KEEPALIVE = { timeMs: 30_000, timeoutMs: 20_000 } as const;

const DEFAULT_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // Notice a control plane that vanished without closing the connection.
  'grpc.keepalive_time_ms': XDS_CLIENT_KEEPALIVE.timeMs,
  'grpc.keepalive_timeout_ms': XDS_CLIENT_KEEPALIVE.timeoutMs,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
};

export class DeltaXdsClient {
  private readonly types = new Map<string, TypeEntry>();
  private readonly changeListeners = new Set<ChangeListener>();
  private readonly statusListeners = new Set<StatusListener>();
  private readonly responseListeners = new Set<ResponseListener>();
  private readonly logger: Logger;
  private client: AggregatedDiscoveryServiceClient | undefined;
  private stream: Stream | undefined;
  private running = false;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private counters = { streams: 0, acks: 0, nacks: 0 };
  private connected = false;
  private lastError: string | undefined;
  private lastNack: XdsClientStatus['lastNack'];
  private connectedSince: string | undefined;
  private disconnectedSince: string | undefined;
  private syncWaiters: Array<() => void> = [];

  constructor(private readonly options: DeltaXdsClientOptions) {
    this.logger = options.logger ?? createLogger('xds-client');
    for (const { type, subscription } of options.types) {
      if (this.types.has(type.typeUrl)) throw new Error(`xDS type ${type.typeUrl} is listed twice; list each type once`);
      const wildcard = subscription?.wildcard ?? true;
      this.types.set(type.typeUrl, {
        set: new ResourceSet(type),
        wildcard,
        names: new Set(subscription?.names ?? []),
        seenOnStream: false,
        seenEver: false,
      });
    }
  }

  /** Open the stream (and keep reopening it) until stop(). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.client = new AggregatedDiscoveryServiceClient(this.options.target, channelCredentials(this.options.credentials), {
      ...DEFAULT_CHANNEL_OPTIONS,
      ...(this.options.credentials.kind === 'tls' && this.options.credentials.serverName
        ? { 'grpc.ssl_target_name_override': this.options.credentials.serverName, 'grpc.default_authority': this.options.credentials.serverName }
        : {}),
      ...this.options.channelOptions,
    });
    void this.openStream();
  }

  /** Close the stream and stop reconnecting. The held resources stay readable. */
  stop(): void {
    this.running = false;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const stream = this.stream;
    this.stream = undefined;
    if (stream) {
      stream.removeAllListeners('data');
      stream.on('error', () => undefined);
      stream.cancel();
    }
    this.client?.close();
    this.client = undefined;
    this.setConnected(false, 'stopped');
  }

  /** The resources of a type, by name. */
  resources<T>(type: ResourceType<T>): ReadonlyMap<string, ResourceEntry<T>> {
    const entry = this.entry(type.typeUrl);
    const out = new Map<string, ResourceEntry<T>>();
    for (const e of entry.set.values()) out.set(e.name, e as ResourceEntry<T>);
    return out;
  }

  /** One resource, if held. */
  get<T>(type: ResourceType<T>, name: string): ResourceEntry<T> | undefined {
    return this.entry(type.typeUrl).set.get(name) as ResourceEntry<T> | undefined;
  }

  /** Hear every accepted change (one call per response and type). Returns an unsubscribe function. */
  onChange(listener: ChangeListener): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /** Hear the changes of one type, typed. */
  watch<T>(type: ResourceType<T>, listener: (change: ResourceChange<T>) => void): () => void {
    return this.onChange((change) => {
      if (change.typeUrl === type.typeUrl) listener(change as ResourceChange<T>);
    });
  }

  onStatus(listener: StatusListener): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  /** Every response as received, with whether it was accepted (tests, debugging). */
  onResponse(listener: ResponseListener): () => void {
    this.responseListeners.add(listener);
    return () => this.responseListeners.delete(listener);
  }

  status(): XdsClientStatus {
    const waitingFor = [...this.types].filter(([, t]) => !t.seenEver).map(([url]) => url);
    return {
      target: this.options.target,
      connected: this.connected,
      synced: waitingFor.length === 0,
      waitingFor,
      streams: this.counters.streams,
      acks: this.counters.acks,
      nacks: this.counters.nacks,
      lastError: this.lastError,
      lastNack: this.lastNack,
      connectedSince: this.connectedSince,
      disconnectedSince: this.disconnectedSince,
    };
  }

  /** Undefined when the client has a first complete view of the mesh, else why not. */
  notReadyReason(): string | undefined {
    const s = this.status();
    if (s.synced) return undefined;
    const why = s.lastError ? ` (last error: ${s.lastError})` : '';
    return `waiting for the first xDS response from ${s.target} for ${s.waitingFor.join(', ')}${why}`;
  }

  /** Resolves once every type has been received, or rejects after timeoutMs. */
  whenSynced(timeoutMs = 30_000): Promise<void> {
    if (this.status().synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.syncWaiters = this.syncWaiters.filter((w) => w !== done);
        reject(new Error(`no complete xDS state from ${this.options.target} within ${timeoutMs} ms: ${this.notReadyReason() ?? ''}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.syncWaiters.push(done);
    });
  }

  /** Follow more names of a type (a no-op for names already followed). */
  subscribe(typeUrl: string, names: readonly string[]): void {
    const entry = this.entry(typeUrl);
    const fresh = names.filter((n) => n !== WILDCARD_NAME && !entry.names.has(n));
    for (const n of fresh) entry.names.add(n);
    const wildcard = names.includes(WILDCARD_NAME) && !entry.wildcard;
    if (wildcard) entry.wildcard = true;
    const subscribe = [...(wildcard ? [WILDCARD_NAME] : []), ...fresh];
    if (subscribe.length > 0) this.send({ typeUrl, resourceNamesSubscribe: subscribe });
  }

  /** Stop following names of a type; the resources are dropped (listeners hear the removal). */
  unsubscribe(typeUrl: string, names: readonly string[]): void {
    const entry = this.entry(typeUrl);
    const gone = names.filter((n) => n !== WILDCARD_NAME && entry.names.delete(n));
    const dropWildcard = names.includes(WILDCARD_NAME) && entry.wildcard;
    if (dropWildcard) entry.wildcard = false;
    const unsubscribe = [...(dropWildcard ? [WILDCARD_NAME] : []), ...gone];
    if (unsubscribe.length === 0) return;
    this.send({ typeUrl, resourceNamesUnsubscribe: unsubscribe });
    const drop = dropWildcard ? [...entry.set.values()].map((e) => e.name).filter((n) => !entry.names.has(n)) : gone;
    const change = entry.set.drop(drop);
    if (change.removed.length > 0) this.emitChange(change);
  }

  // ---- the stream ----------------------------------------------------------------------------

  private entry(typeUrl: string): TypeEntry {
    const entry = this.types.get(typeUrl);
    if (!entry) throw new Error(`this xDS client does not follow ${typeUrl}; it follows ${[...this.types.keys()].join(', ')}`);
    return entry;
  }

  private async openStream(): Promise<void> {
    if (!this.running || !this.client) return;
    let metadata: grpc.Metadata;
    try {
      metadata = (await this.options.callMetadata?.()) ?? new grpc.Metadata();
    } catch (err) {
      this.fail(`cannot build the call metadata: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    if (!this.running || !this.client) return;
    this.counters.streams++;
    const stream = this.client.deltaAggregatedResources(metadata);
    this.stream = stream;
    for (const t of this.types.values()) t.seenOnStream = false;

    let ended = false;
    const onGone = (why: string): void => {
      if (ended) return;
      ended = true;
      if (this.stream === stream) this.stream = undefined;
      stream.removeAllListeners('data');
      this.fail(why);
    };
    stream.on('data', (response: DeltaDiscoveryResponse) => this.handleResponse(stream, response));
    stream.on('error', (err: grpc.ServiceError) => onGone(`stream failed: ${grpc.status[err.code] ?? err.code} ${err.details || err.message}`));
    stream.on('end', () => onGone('the control plane ended the stream'));

    let first = true;
    for (const [typeUrl, t] of this.types) {
      const subscribe = [...(t.wildcard ? [WILDCARD_NAME] : []), ...t.names];
      stream.write(
        DeltaDiscoveryRequest.fromPartial({
          ...(first ? { node: nodeProto(this.options.node) } : {}),
          typeUrl,
          resourceNamesSubscribe: subscribe,
          initialResourceVersions: t.set.versions(),
        }),
      );
      first = false;
    }
    this.logger.debug({ target: this.options.target, stream: this.counters.streams }, 'xds stream opened');
  }

  private handleResponse(stream: Stream, response: DeltaDiscoveryResponse): void {
    if (stream !== this.stream) return;
    this.attempt = 0;
    this.setConnected(true);
    const entry = this.types.get(response.typeUrl);
    if (!entry) {
      // Not something we asked for: NACK so the server operator sees it, change nothing.
      const message = `this client did not subscribe to ${response.typeUrl}`;
      this.nack(response, message);
      return;
    }
    const result = entry.set.apply(response, !entry.seenOnStream);
    if (!result.ok) {
      this.nack(response, result.message);
      return;
    }
    stream.write(DeltaDiscoveryRequest.fromPartial({ typeUrl: response.typeUrl, responseNonce: response.nonce }));
    this.counters.acks++;
    entry.seenOnStream = true;
    const wasSynced = this.status().synced;
    entry.seenEver = true;
    for (const l of this.responseListeners) l(response, { accepted: true });
    if (result.change.updated.length > 0 || result.change.removed.length > 0 || result.change.firstOnStream) this.emitChange(result.change);
    if (!wasSynced && this.status().synced) {
      this.logger.info({ target: this.options.target }, 'xds: received the first complete state');
      for (const w of this.syncWaiters.splice(0)) w();
      this.emitStatus();
    }
  }

  private nack(response: DeltaDiscoveryResponse, message: string): void {
    this.stream?.write(
      DeltaDiscoveryRequest.fromPartial({ typeUrl: response.typeUrl, responseNonce: response.nonce, errorDetail: { code: NACK_CODE, message } }),
    );
    this.counters.nacks++;
    this.lastNack = { typeUrl: response.typeUrl, message, at: new Date().toISOString() };
    this.logger.warn(
      { typeUrl: response.typeUrl, nonce: response.nonce, error: message },
      'xds: rejected a response (NACK); keeping the previous state. Fix the resources named in the error at the control plane',
    );
    for (const l of this.responseListeners) l(response, { accepted: false, message });
    this.emitStatus();
  }

  private send(init: Parameters<typeof DeltaDiscoveryRequest.fromPartial>[0]): void {
    // Not connected: the next stream's first requests carry the whole subscription.
    this.stream?.write(DeltaDiscoveryRequest.fromPartial(init));
  }

  private fail(why: string): void {
    this.lastError = why;
    this.setConnected(false, why);
    if (!this.running) return;
    const delay = backoffDelay(this.attempt++, this.options.backoff);
    this.logger.warn({ target: this.options.target, error: why, retryInMs: delay }, 'xds: stream down; keeping the last good state and reconnecting');
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.openStream();
    }, delay);
    this.retryTimer.unref?.();
  }

  private setConnected(connected: boolean, why?: string): void {
    if (this.connected === connected) return;
    this.connected = connected;
    const now = new Date().toISOString();
    if (connected) {
      this.connectedSince = now;
      this.disconnectedSince = undefined;
      this.logger.info({ target: this.options.target, stream: this.counters.streams }, 'xds: connected');
    } else {
      this.disconnectedSince = now;
      this.connectedSince = undefined;
      if (why) this.lastError = why;
    }
    this.emitStatus();
  }

  private emitChange(change: ResourceChange<unknown>): void {
    for (const l of this.changeListeners) {
      try {
        l(change);
      } catch (err) {
        this.logger.error({ err, typeUrl: change.typeUrl }, 'xds: a change listener threw; the state was applied anyway');
      }
    }
  }

  private emitStatus(): void {
    const status = this.status();
    for (const l of this.statusListeners) l(status);
  }
}

function channelCredentials(c: XdsCredentials): grpc.ChannelCredentials {
  if (c.kind === 'plaintext') return grpc.credentials.createInsecure();
  if ((c.certChainPem === undefined) !== (c.privateKeyPem === undefined)) {
    throw new Error('xDS TLS credentials: give both the client certificate chain and its private key, or neither');
  }
  return grpc.credentials.createSsl(
    Buffer.from(c.trustBundlePem),
    c.privateKeyPem !== undefined ? Buffer.from(c.privateKeyPem) : null,
    c.certChainPem !== undefined ? Buffer.from(c.certChainPem) : null,
  );
}

function nodeProto(node: XdsNode): NonNullable<Parameters<typeof DeltaDiscoveryRequest.fromPartial>[0]>['node'] {
  return { id: node.id, cluster: node.cluster ?? '', metadata: node.metadata ? { ...node.metadata } : undefined, userAgentName: 'nodemesh' };
}
