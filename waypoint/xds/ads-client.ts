// A delta ADS client for the waypoint's four Envoy types. It subscribes (wildcard) in
// make-before-break order CDS, EDS, LDS, RDS; each response is decoded and compiled whole before
// anything changes — a resource that does not compile NACKs the response (error_detail names the
// resource and the field) and the last good config keeps serving. When the stream breaks it
// reconnects with jittered exponential back-off, presenting the versions it holds
// (initial_resource_versions) so an unchanged control plane resends nothing.
// (common/xds was not in the tree yet when this was written; this client is the part the
// waypoint needs.)
import { credentials as grpcCredentials, Metadata, type ChannelCredentials, type ClientDuplexStream } from '@grpc/grpc-js';
import { Cluster } from '../../api/gen/envoy/config/cluster/v3/cluster';
import { ClusterLoadAssignment } from '../../api/gen/envoy/config/endpoint/v3/endpoint';
import { Listener } from '../../api/gen/envoy/config/listener/v3/listener';
import { RouteConfiguration } from '../../api/gen/envoy/config/route/v3/route';
import { AggregatedDiscoveryServiceClient } from '../../api/gen/envoy/service/discovery/v3/ads';
import { DeltaDiscoveryRequest, type DeltaDiscoveryResponse } from '../../api/gen/envoy/service/discovery/v3/discovery';
import type { Logger } from '../../common/log';

export const TYPE = {
  cluster: `type.googleapis.com/${Cluster.$type}`,
  endpoint: `type.googleapis.com/${ClusterLoadAssignment.$type}`,
  listener: `type.googleapis.com/${Listener.$type}`,
  route: `type.googleapis.com/${RouteConfiguration.$type}`,
} as const;

export const SHORT: Record<string, string> = { [TYPE.cluster]: 'cds', [TYPE.endpoint]: 'eds', [TYPE.listener]: 'lds', [TYPE.route]: 'rds' };

/** One type's handler: validate/compile everything (throw to NACK), then commit. */
export interface TypeHandler {
  readonly typeUrl: string;
  /**
   * Check the update; throw an Error whose message explains what is wrong to refuse it whole.
   * Returns a commit function that applies it.
   */
  prepare(updated: ReadonlyArray<{ name: string; version: string; value: Uint8Array }>, removed: readonly string[]): () => void;
}

export interface AdsClientOptions {
  readonly address: string;
  readonly credentials?: ChannelCredentials;
  readonly nodeId: string;
  readonly cluster: string;
  readonly metadata?: Record<string, string>;
  readonly handlers: readonly TypeHandler[];
  readonly logger: Logger;
  readonly onOutcome?: (typeUrl: string, outcome: 'ack' | 'nack', detail?: string) => void;
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
}

type Stream = ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;

export class AdsClient {
  private readonly client: InstanceType<typeof AggregatedDiscoveryServiceClient>;
  private stream: Stream | undefined;
  private readonly versions = new Map<string, Map<string, string>>();
  private readonly synced = new Set<string>();
  private stopped = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private readyWaiters: Array<() => void> = [];
  connected = false;
  lastError: string | undefined;
  readonly nacks: Array<{ typeUrl: string; detail: string; at: string }> = [];

  constructor(private readonly o: AdsClientOptions) {
    this.client = new AggregatedDiscoveryServiceClient(o.address, o.credentials ?? grpcCredentials.createInsecure(), {
      'grpc.keepalive_time_ms': 30_000,
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2000,
    });
    for (const h of o.handlers) this.versions.set(h.typeUrl, new Map());
  }

  start(): void {
    this.open();
  }

  /** Resolves once every type got its first response (the waypoint can serve). */
  ready(): Promise<void> {
    if (this.synced.size === this.o.handlers.length) return Promise.resolve();
    return new Promise((r) => this.readyWaiters.push(r));
  }

  isReady(): boolean {
    return this.synced.size === this.o.handlers.length;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.stream?.cancel();
    this.client.close();
  }

  private open(): void {
    if (this.stopped) return;
    const stream = this.client.deltaAggregatedResources(new Metadata());
    this.stream = stream;
    let gotResponse = false;
    const node = {
      id: this.o.nodeId,
      cluster: this.o.cluster,
      metadata: { ...(this.o.metadata ?? {}) },
      userAgentName: 'nodemesh-waypoint',
    };
    for (const h of this.o.handlers) {
      stream.write(
        DeltaDiscoveryRequest.fromPartial({
          node,
          typeUrl: h.typeUrl,
          resourceNamesSubscribe: ['*'],
          initialResourceVersions: Object.fromEntries(this.versions.get(h.typeUrl)!),
        }),
      );
    }
    stream.on('data', (r: DeltaDiscoveryResponse) => {
      if (!gotResponse) {
        gotResponse = true;
        this.attempt = 0;
        this.connected = true;
        this.o.logger.info({ address: this.o.address }, 'xDS stream up');
      }
      this.onResponse(stream, r);
    });
    const retry = (why: string): void => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      this.connected = false;
      if (this.stopped) return;
      this.lastError = why;
      const b = this.o.backoff ?? { initialMs: 250, maxMs: 10_000 };
      const delay = Math.min(b.maxMs, b.initialMs * 2 ** Math.min(this.attempt++, 16)) * (0.5 + Math.random() / 2);
      this.o.logger.warn({ address: this.o.address, why, retryInMs: Math.round(delay) }, 'xDS stream down; serving the last good config and reconnecting');
      this.timer = setTimeout(() => this.open(), delay);
      this.timer.unref();
    };
    stream.on('error', (err: Error) => retry(err.message));
    stream.on('end', () => retry('the control plane ended the stream'));
    stream.on('close', () => retry('stream closed'));
  }

  private onResponse(stream: Stream, r: DeltaDiscoveryResponse): void {
    const h = this.o.handlers.find((x) => x.typeUrl === r.typeUrl);
    if (!h) {
      stream.write(DeltaDiscoveryRequest.fromPartial({ typeUrl: r.typeUrl, responseNonce: r.nonce, errorDetail: { code: 3, message: `the waypoint does not subscribe to ${r.typeUrl}` } }));
      return;
    }
    const updated: Array<{ name: string; version: string; value: Uint8Array }> = [];
    let detail: string | undefined;
    for (const res of r.resources) {
      if (!res.resource) continue;
      if (res.resource.typeUrl !== h.typeUrl) {
        detail = `${res.name}: has type ${res.resource.typeUrl}, expected ${h.typeUrl}`;
        break;
      }
      updated.push({ name: res.name, version: res.version, value: res.resource.value });
    }
    let commit: (() => void) | undefined;
    if (!detail) {
      try {
        commit = h.prepare(updated, r.removedResources);
      } catch (err) {
        detail = err instanceof Error ? err.message : String(err);
      }
    }
    if (detail || !commit) {
      const message = detail ?? 'rejected';
      this.nacks.push({ typeUrl: h.typeUrl, detail: message, at: new Date().toISOString() });
      if (this.nacks.length > 20) this.nacks.shift();
      this.o.logger.warn({ type: SHORT[h.typeUrl], nonce: r.nonce, error: message }, 'xDS update rejected (NACK); keeping the last good config');
      this.o.onOutcome?.(h.typeUrl, 'nack', message);
      stream.write(DeltaDiscoveryRequest.fromPartial({ typeUrl: h.typeUrl, responseNonce: r.nonce, errorDetail: { code: 3, message } }));
    } else {
      commit();
      const v = this.versions.get(h.typeUrl)!;
      for (const u of updated) v.set(u.name, u.version);
      for (const name of r.removedResources) v.delete(name);
      this.o.logger.debug({ type: SHORT[h.typeUrl], updated: updated.length, removed: r.removedResources.length }, 'xDS update applied');
      this.o.onOutcome?.(h.typeUrl, 'ack');
      stream.write(DeltaDiscoveryRequest.fromPartial({ typeUrl: h.typeUrl, responseNonce: r.nonce }));
    }
    if (!this.synced.has(h.typeUrl)) {
      this.synced.add(h.typeUrl);
      if (this.isReady()) for (const w of this.readyWaiters.splice(0)) w();
    }
  }
}
