// State-of-the-world ADS over gRPC: one SotwStreamState per stream, fed by the stream's requests
// and the source's change notifications (the stream's life is grpc-stream.ts's, shared with
// delta); flushes are coalesced (one per event-loop turn) and paused while the stream is not
// writable. Each frame is written as a generated DiscoveryResponse on the service definition
// of service.ts (adsServiceDefinition), the one the control plane's gRPC servers register.
import { DiscoveryResponse, type DiscoveryRequest } from '../../api/gen/envoy/service/discovery/v3/discovery';
import { Any } from '../../api/gen/google/protobuf/any';
import type { Logger } from '../../common/log';
import { AdsStreams, countAck, drainWriter } from './grpc-stream';
import type { XdsMetrics } from './metrics';
import type { NodeBinding } from './node-binding';
import type { SotwCall } from './service';
import type { ResourceSource } from './source';
import { SotwStreamState, type SotwFrame, type SotwOutcome, type SotwTypeView } from './sotw-state';

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
  private readonly streams: AdsStreams<SotwFrame, SotwStreamState>;

  constructor(
    private readonly source: ResourceSource,
    private readonly options: SotwServerOptions,
  ) {
    this.streams = new AdsStreams(source, options.metrics);
  }

  /**
   * The StreamAggregatedResources handler (adsImplementation's `sotw`): each frame is written as a
   * DiscoveryResponse message. Resource bytes are shared, not re-encoded, but copied into each
   * response. `binding`: who the caller's credential belongs to, when the server checked one.
   */
  readonly handle = (call: SotwCall, binding?: NodeBinding): void => this.serve(call, (frame) => call.write(frameToResponse(frame)), binding);

  private serve(call: SotwCall, write: (frame: SotwFrame) => boolean, binding: NodeBinding | undefined): void {
    const id = this.streams.newId();
    const peer = call.getPeer();
    const state = new SotwStreamState(this.source, peer, binding);
    const log = this.options.logger.child({ stream: id, peer, api: 'sotw', ...(binding ? { node: binding.caller.node } : {}) });
    this.streams.serve(id, call, {
      api: 'sotw',
      state,
      log,
      writer: drainWriter(call, write),
      handleRequest: (request: DiscoveryRequest) => {
        const first = !state.subscribedTypes().includes(request.typeUrl);
        const outcome = state.handleRequest(request);
        if (outcome) this.record(outcome, log);
        return first ? { names: request.resourceNames.length } : undefined;
      },
      frameFields: (frame) => ({ typeUrl: frame.typeUrl, version: frame.versionInfo, nonce: frame.nonce, resources: frame.resources.length }),
    });
  }

  private record(outcome: SotwOutcome, log: Logger): void {
    countAck(this.options.metrics, outcome);
    switch (outcome.kind) {
      case 'ack':
        break;
      case 'nack':
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
    return this.streams
      .views((state, typeUrl) => state.describe(typeUrl))
      .map(({ id, nodeId, peer, types }) => ({ id, api: 'sotw' as const, nodeId, peer, types }));
  }

  closeAll(): void {
    this.streams.closeAll();
  }
}
