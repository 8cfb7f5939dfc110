// State-of-the-world ADS over gRPC: one SotwStreamState per stream, fed by the stream's requests
// and the source's change notifications; flushes are coalesced (one per event-loop turn) and
// paused while the stream is not writable. Responses are written as SotwFrames whose resources are
// pre-encoded Any records shared by every stream (encodeSotwFrame).
import { status, type ServerDuplexStream } from '@grpc/grpc-js';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { DiscoveryResponse, type DiscoveryRequest } from '../../api/gen/envoy/service/discovery/v3/discovery';
import { Any } from '../../api/gen/google/protobuf/any';
import type { Logger } from '../../common/log';
import type { XdsMetrics } from './metrics';
import type { XdsResource } from './resource';
import type { ResourceSource } from './source';
import { SotwRequestError, SotwStreamState, type SotwFrame, type SotwOutcome, type SotwTypeView } from './sotw-state';

export type SotwStreamCall = ServerDuplexStream<DiscoveryRequest, SotwFrame>;

const RESOURCES_TAG = (2 << 3) | 2; // DiscoveryResponse.resources, length-delimited
const records = new WeakMap<XdsResource, Uint8Array>();

/** DiscoveryResponse.resources field record of one resource, encoded once and shared. */
function sotwRecord(resource: XdsResource): Uint8Array {
  let record = records.get(resource);
  if (!record) {
    const v = resource.value;
    const any = Any.encode(Any.fromPartial({ typeUrl: resource.typeUrl, value: Buffer.from(v.buffer, v.byteOffset, v.byteLength) })).finish();
    record = new BinaryWriter().uint32(RESOURCES_TAG).bytes(any).finish();
    records.set(resource, record);
  }
  return record;
}

export function encodeSotwFrame(frame: SotwFrame): Buffer {
  const header = DiscoveryResponse.encode(
    DiscoveryResponse.fromPartial({ versionInfo: frame.versionInfo, typeUrl: frame.typeUrl, nonce: frame.nonce }),
  ).finish();
  const parts: Uint8Array[] = [header];
  for (const r of frame.resources) parts.push(sotwRecord(r));
  return Buffer.concat(parts);
}

/** A frame as a generated DiscoveryResponse message. */
export function frameToResponse(frame: SotwFrame): DiscoveryResponse {
  return DiscoveryResponse.fromPartial({
    versionInfo: frame.versionInfo,
    typeUrl: frame.typeUrl,
    nonce: frame.nonce,
    resources: frame.resources.map((r) => Any.fromPartial({ typeUrl: r.typeUrl, value: Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength) })),
  });
}

export interface SotwServerOptions {
  readonly logger: Logger;
  readonly metrics: XdsMetrics;
}

/** A connected SotW client, as the admin API and `nodemesh proxy-config xds` show it. */
export interface SotwClientView {
  readonly id: number;
  readonly api: 'sotw';
  readonly nodeId: string;
  readonly peer: string;
  readonly types: Record<string, SotwTypeView>;
}

export class SotwAdsServer {
  private readonly streams = new Map<number, { state: SotwStreamState; call: SotwStreamCall }>();
  private nextId = 0;

  constructor(
    private readonly source: ResourceSource,
    private readonly options: SotwServerOptions,
  ) {}

  /** The gRPC handler for StreamAggregatedResources with encodeSotwFrame as the serializer (sotw-service.ts). */
  readonly handle = (call: SotwStreamCall): void => this.serve(call, (frame) => call.write(frame));

  /**
   * The handler for a server that registered the generated DiscoveryResponse serializer
   * (service.ts's adsServiceDefinition): each frame is written as a DiscoveryResponse message.
   * Resource bytes are shared, not re-encoded, but copied into each response.
   */
  readonly handleWithMessages = (call: ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>): void =>
    this.serve(call as unknown as SotwStreamCall, (frame) => call.write(frameToResponse(frame)));

  private serve(call: SotwStreamCall, write: (frame: SotwFrame) => boolean): void {
    const { logger, metrics } = this.options;
    const id = ++this.nextId;
    const peer = call.getPeer();
    const state = new SotwStreamState(this.source, peer);
    const log = logger.child({ stream: id, peer, api: 'sotw' });
    let scheduled = false;
    let waitingForDrain = false;
    let closed = false;

    const flush = (): void => {
      scheduled = false;
      if (closed || waitingForDrain) return;
      const now = process.hrtime.bigint();
      for (const frame of state.flush(now)) {
        const label = { type_url: frame.typeUrl };
        metrics.pushes.inc(label);
        if (frame.resources.length) metrics.pushedResources.inc(label, frame.resources.length);
        if (frame.changeAt !== undefined) metrics.pushLatency.observe(label, Number(now - frame.changeAt) / 1e9);
        log.debug({ typeUrl: frame.typeUrl, version: frame.versionInfo, nonce: frame.nonce, resources: frame.resources.length }, 'xds push');
        if (!write(frame)) waitingForDrain = true;
      }
      if (waitingForDrain) {
        call.once('drain', () => {
          waitingForDrain = false;
          if (state.pending) schedule();
        });
      }
    };
    const schedule = (): void => {
      if (scheduled || closed) return;
      scheduled = true;
      setImmediate(flush);
    };
    const offChange = this.source.onChange((change) => {
      if (state.noteChange(change)) schedule();
    });
    this.streams.set(id, { state, call });
    metrics.connectedClients.inc({ api: 'sotw' });

    const close = (why: string): void => {
      if (closed) return;
      closed = true;
      offChange();
      this.streams.delete(id);
      metrics.connectedClients.dec({ api: 'sotw' });
      log.info({ nodeId: state.client?.nodeId, why }, 'xds sotw stream closed');
    };

    call.on('data', (request: DiscoveryRequest) => {
      if (closed) return;
      const first = !state.subscribedTypes().includes(request.typeUrl);
      try {
        const outcome = state.handleRequest(request);
        if (outcome) this.record(outcome, log);
      } catch (err) {
        const message = err instanceof SotwRequestError ? err.message : `cannot handle the request: ${String(err)}`;
        log.warn({ err: message }, 'xds request refused; ending the stream');
        close('bad request');
        call.emit('error', { code: status.INVALID_ARGUMENT, details: message });
        return;
      }
      if (first) {
        log.info({ nodeId: state.client?.nodeId, typeUrl: request.typeUrl, names: request.resourceNames.length }, 'xds sotw subscription');
        if (!this.source.typeUrls.includes(request.typeUrl)) {
          log.warn({ typeUrl: request.typeUrl }, 'client subscribed to a type this server does not serve; it will get empty responses');
        }
      }
      if (state.pending) schedule();
    });
    call.on('end', () => {
      close('client ended the stream');
      call.end();
    });
    call.on('cancelled', () => close('cancelled'));
    call.on('error', (err: Error) => close(`error: ${err.message}`));
    call.on('close', () => close('closed'));
  }

  private record(outcome: SotwOutcome, log: Logger): void {
    const { metrics } = this.options;
    const label = { type_url: outcome.typeUrl };
    const now = process.hrtime.bigint();
    switch (outcome.kind) {
      case 'ack':
        metrics.acks.inc(label);
        metrics.ackLatency.observe(label, Number(now - outcome.sentAt) / 1e9);
        break;
      case 'nack':
        metrics.nacks.inc(label);
        metrics.ackLatency.observe(label, Number(now - outcome.sentAt) / 1e9);
        log.warn(
          { typeUrl: outcome.typeUrl, rejectedVersion: outcome.version, keepsVersion: outcome.keeps, code: outcome.code, error: outcome.message },
          'xds client rejected a response (NACK); it keeps its previous config and this version is not resent',
        );
        break;
      case 'stale':
        log.debug({ typeUrl: outcome.typeUrl, nonce: outcome.nonce }, 'xds request with a stale nonce ignored');
        break;
    }
  }

  clients(): SotwClientView[] {
    return [...this.streams].map(([id, { state }]) => {
      const types: Record<string, SotwTypeView> = {};
      for (const t of state.subscribedTypes()) {
        const d = state.describe(t);
        if (d) types[t] = d;
      }
      return { id, api: 'sotw' as const, nodeId: state.client?.nodeId ?? '', peer: state.client?.peer ?? '', types };
    });
  }

  closeAll(): void {
    for (const { call } of [...this.streams.values()]) call.emit('error', { code: status.UNAVAILABLE, details: 'the control plane is shutting down' });
  }
}
