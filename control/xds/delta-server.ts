// Delta ADS over gRPC: one DeltaStreamState per stream, fed by the stream's requests and by the
// source's change notifications. Flushes are coalesced (one per event-loop turn) and paused while
// the stream's earlier responses are still waiting for the transport (HTTP/2 flow control: the
// client is not reading), so a slow client gets one up-to-date response when it catches up rather
// than a queue of stale ones.
import { status, type ServerDuplexStream } from '@grpc/grpc-js';
import type { DeltaDiscoveryRequest } from '../../api/gen/envoy/service/discovery/v3/discovery';
import type { Logger } from '../../common/log';
import { DeltaStreamState, XdsRequestError, type AckOutcome, type DeltaFrame, type DeltaStateOptions } from './delta-state';
import type { XdsMetrics } from './metrics';
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
  readonly types: Record<string, { wildcard: boolean; names: string[]; sent: number }>;
}

export class DeltaAdsServer {
  private readonly streams = new Map<number, { state: DeltaStreamState; call: DeltaCall }>();
  private nextId = 0;

  constructor(
    private readonly source: ResourceSource,
    private readonly options: DeltaServerOptions,
  ) {}

  /**
   * The gRPC handler for DeltaAggregatedResources. `authenticatedNode`: who the caller's
   * credential belongs to, when the server checked one.
   */
  readonly handle = (call: DeltaCall, authenticatedNode?: string): void => {
    const { logger, metrics } = this.options;
    const id = ++this.nextId;
    const peer = call.getPeer();
    const state = new DeltaStreamState(this.source, peer, this.options, authenticatedNode);
    let scheduled = false;
    let queued = 0; // responses handed to gRPC and not yet written to the transport
    const maxQueued = this.options.maxQueuedResponses ?? 2;
    let closed = false;
    const log = logger.child({ stream: id, peer, ...(authenticatedNode ? { node: authenticatedNode } : {}) });

    const written = (): void => {
      queued--;
      if (!closed && queued < maxQueued && state.pending) schedule();
    };
    const flush = (): void => {
      scheduled = false;
      if (closed || queued >= maxQueued) return;
      const now = process.hrtime.bigint();
      for (const frame of state.flush(now)) {
        const label = { type_url: frame.typeUrl };
        metrics.pushes.inc(label);
        if (frame.resources.length) metrics.pushedResources.inc(label, frame.resources.length);
        if (frame.removed.length) metrics.removedResources.inc(label, frame.removed.length);
        if (frame.changeAt !== undefined) metrics.pushLatency.observe(label, Number(now - frame.changeAt) / 1e9);
        log.debug(
          { typeUrl: frame.typeUrl, nonce: frame.nonce, resources: frame.resources.length, removed: frame.removed.length },
          'xds push',
        );
        queued++;
        call.write(frame, written);
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
    metrics.connectedClients.inc({ api: 'delta' });

    const close = (why: string): void => {
      if (closed) return;
      closed = true;
      offChange();
      this.streams.delete(id);
      metrics.connectedClients.dec({ api: 'delta' });
      log.info({ nodeId: state.client?.nodeId, why }, 'xds delta stream closed');
    };

    call.on('data', (request: DeltaDiscoveryRequest) => {
      if (closed) return;
      let first = false;
      try {
        const result = state.handleRequest(request);
        first = result.firstOfType;
        if (result.outcome) this.record(result.outcome, log);
      } catch (err) {
        const message = err instanceof XdsRequestError ? err.message : `cannot handle the request: ${String(err)}`;
        log.warn({ err: message }, 'xds request refused; ending the stream');
        close('bad request');
        call.emit('error', { code: status.INVALID_ARGUMENT, details: message });
        return;
      }
      if (first) {
        log.info(
          {
            nodeId: state.client?.nodeId,
            typeUrl: request.typeUrl,
            subscribe: request.resourceNamesSubscribe.length,
            initialVersions: Object.keys(request.initialResourceVersions).length,
          },
          'xds delta subscription',
        );
        if (!this.source.typeUrls.includes(request.typeUrl)) {
          log.warn({ typeUrl: request.typeUrl }, 'client subscribed to a type this server does not serve; it will get no resources');
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
  };

  private record(outcome: AckOutcome, log: Logger): void {
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
    return [...this.streams].map(([id, { state }]) => {
      const types: DeltaClientView['types'] = {};
      for (const typeUrl of state.subscribedTypes()) {
        const d = state.describe(typeUrl);
        if (d) types[typeUrl] = d;
      }
      return { id, nodeId: state.client?.nodeId ?? '', peer: state.client?.peer ?? '', types };
    });
  }

  /** End every open stream (server shutdown); clients reconnect elsewhere or later. */
  closeAll(): void {
    for (const { call } of [...this.streams.values()]) {
      call.emit('error', { code: status.UNAVAILABLE, details: 'the control plane is shutting down' });
    }
  }
}
