// Delta ADS over gRPC: one DeltaStreamState per stream, fed by the stream's requests and by the
// source's change notifications (the stream's life is grpc-stream.ts's, shared with SotW). Flushes
// are coalesced (one per event-loop turn) and paused while the stream's earlier responses are
// still waiting for the transport (HTTP/2 flow control: the client is not reading), so a slow
// client gets one up-to-date response when it catches up rather than a queue of stale ones.
import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { DeltaDiscoveryRequest } from '../../api/gen/envoy/service/discovery/v3/discovery';
import type { Logger } from '../../common/log';
import { DeltaStreamState, type AckOutcome, type DeltaFrame, type DeltaStateOptions, type DeltaTypeView } from './delta-state';
import { AdsStreams, countAck, queueLimitedWriter } from './grpc-stream';
import type { XdsMetrics } from './metrics';
import type { NodeBinding } from './node-binding';
import type { ResourceSource } from './source';

export type DeltaCall = ServerDuplexStream<DeltaDiscoveryRequest, DeltaFrame>;

export interface DeltaServerOptions extends DeltaStateOptions {
  readonly logger: Logger;
  readonly metrics: XdsMetrics;
  /**
   * How many responses a stream may have waiting for the transport before further changes are
   * held back (and coalesced) until they are sent. Default 2.
   */
  readonly maxQueuedResponses?: number;
}

/** A connected delta client, as the admin API shows it. */
export interface DeltaClientView {
  readonly id: number;
  readonly nodeId: string;
  readonly peer: string;
  readonly types: Record<string, DeltaTypeView>;
}

export class DeltaAdsServer {
  private readonly streams: AdsStreams<DeltaFrame, DeltaStreamState>;

  constructor(
    private readonly source: ResourceSource,
    private readonly options: DeltaServerOptions,
  ) {
    this.streams = new AdsStreams(source, options.metrics);
  }

  /**
   * The gRPC handler for DeltaAggregatedResources. `binding`: who the caller's credential belongs
   * to, when the server checked one (the first request's node must match it).
   */
  readonly handle = (call: DeltaCall, binding?: NodeBinding): void => {
    const id = this.streams.newId();
    const peer = call.getPeer();
    const state = new DeltaStreamState(this.source, peer, this.options, binding);
    const log = this.options.logger.child({ stream: id, peer, ...(binding ? { node: binding.caller.node } : {}) });
    this.streams.serve(id, call, {
      api: 'delta',
      state,
      log,
      writer: queueLimitedWriter(call, this.options.maxQueuedResponses ?? 2),
      handleRequest: (request: DeltaDiscoveryRequest) => {
        const result = state.handleRequest(request);
        if (result.outcome) this.record(result.outcome, log);
        if (!result.firstOfType) return undefined;
        return { subscribe: request.resourceNamesSubscribe.length, initialVersions: Object.keys(request.initialResourceVersions).length };
      },
      frameFields: (frame) => ({ typeUrl: frame.typeUrl, nonce: frame.nonce, resources: frame.resources.length, removed: frame.removed.length }),
    });
  };

  private record(outcome: AckOutcome, log: Logger): void {
    countAck(this.options.metrics, outcome);
    switch (outcome.kind) {
      case 'ack':
        break;
      case 'nack':
        log.warn(
          {
            typeUrl: outcome.typeUrl,
            nonce: outcome.nonce,
            code: outcome.code,
            error: outcome.message,
            rejected: outcome.rejected.slice(0, 20),
            rejectedCount: outcome.rejected.length,
          },
          'xds client rejected a response (NACK); it keeps its previous versions and the rejected ones are not resent',
        );
        break;
      case 'unknown-nonce':
        log.debug({ typeUrl: outcome.typeUrl, nonce: outcome.nonce }, 'xds request with an unknown nonce');
        break;
    }
  }

  /** Open streams, what they subscribe to and how much they have been sent. */
  clients(): DeltaClientView[] {
    return this.streams.views((state, typeUrl) => state.describe(typeUrl));
  }

  /** End every open stream (server shutdown); clients reconnect elsewhere or later. */
  closeAll(): void {
    this.streams.closeAll();
  }
}
