// What the delta and the state-of-the-world ADS servers share: the life of one gRPC stream around
// a stream state (delta-state.ts, sotw-state.ts) that holds the protocol. Requests go into the
// state; source changes mark it dirty; flushes are coalesced (one per event-loop turn) and held
// back while the stream's writer says earlier responses still wait for the transport. Metrics,
// logs, and closing on end/cancel/error are the same for both variants.
import { status, type ServerDuplexStream } from '@grpc/grpc-js';
import type { Logger } from '../../common/log';
import type { XdsMetrics } from './metrics';
import { XdsRequestError } from './request-error';
import type { XdsResource } from './resource';
import type { ClientInfo, ResourceChange, ResourceSource } from './source';

/** What both variants' responses carry, as far as metrics and logs need it. */
export interface AdsFrame {
  readonly typeUrl: string;
  readonly nonce: string;
  readonly resources: readonly XdsResource[];
  /** Removals (delta only). */
  readonly removed?: readonly string[];
  /** The earliest change this frame carries (process.hrtime.bigint()), for the push-latency metric. */
  readonly changeAt: bigint | undefined;
}

/** The protocol state of one stream, without I/O. */
export interface AdsStreamState<F extends AdsFrame> {
  readonly client: ClientInfo | undefined;
  /** True when a flush would have something to compare. */
  readonly pending: boolean;
  subscribedTypes(): string[];
  /** Note a change in the source; true when this stream has to look at it. */
  noteChange(change: ResourceChange): boolean;
  flush(now: bigint): F[];
}

/** The ACK/NACK part of a request's outcome, which both variants count the same way. */
export interface AckedOrRejected {
  readonly kind: string;
  readonly typeUrl: string;
  readonly sentAt?: bigint;
}

/** How a stream's frames reach the transport. */
export interface FrameWriter<F> {
  /** False while earlier frames still wait for the transport: flushes are held back. */
  readonly ready: boolean;
  write(frame: F): void;
}

export type Api = 'delta' | 'sotw';

/** One open stream in the admin views. */
export interface AdsStreamView<T> {
  readonly id: number;
  readonly nodeId: string;
  readonly peer: string;
  readonly types: Record<string, T>;
}

export interface AdsStreamSpec<Req extends { readonly typeUrl: string }, F extends AdsFrame, S extends AdsStreamState<F>> {
  readonly api: Api;
  readonly state: S;
  readonly log: Logger;
  /** Builds the writer; it calls `resume` when it becomes ready again. */
  readonly writer: (resume: () => void) => FrameWriter<F>;
  /**
   * Feed one request to the state (throw XdsRequestError for one the stream must end on). Returns
   * the fields of the 'subscription' log line when this was the stream's first request of its
   * type, else undefined.
   */
  readonly handleRequest: (request: Req) => Record<string, unknown> | undefined;
  /** The fields of a frame's debug 'xds push' line. */
  readonly frameFields: (frame: F) => Record<string, unknown>;
}

/** Count an ACK or a NACK (other outcomes, such as stale nonces, are not counted). */
export function countAck(metrics: XdsMetrics, outcome: AckedOrRejected): void {
  if ((outcome.kind !== 'ack' && outcome.kind !== 'nack') || outcome.sentAt === undefined) return;
  const label = { type_url: outcome.typeUrl };
  (outcome.kind === 'ack' ? metrics.acks : metrics.nacks).inc(label);
  metrics.ackLatency.observe(label, Number(process.hrtime.bigint() - outcome.sentAt) / 1e9);
}

/** The open streams of one ADS server: registration, serving, the admin view and shutdown. */
export class AdsStreams<F extends AdsFrame, S extends AdsStreamState<F>> {
  private readonly streams = new Map<number, { state: S; call: ServerDuplexStream<unknown, unknown> }>();
  private nextId = 0;

  constructor(
    private readonly source: ResourceSource,
    private readonly metrics: XdsMetrics,
  ) {}

  /** A new stream id (for its logger). */
  newId(): number {
    return ++this.nextId;
  }

  /** Serve one stream until it ends. */
  serve<Req extends { readonly typeUrl: string }>(id: number, call: ServerDuplexStream<Req, unknown>, spec: AdsStreamSpec<Req, F, S>): void {
    const { metrics, source } = this;
    const { api, state, log } = spec;
    let scheduled = false;
    let closed = false;

    const flush = (): void => {
      scheduled = false;
      if (closed || !writer.ready) return;
      const now = process.hrtime.bigint();
      for (const frame of state.flush(now)) {
        const label = { type_url: frame.typeUrl };
        metrics.pushes.inc(label);
        if (frame.resources.length) metrics.pushedResources.inc(label, frame.resources.length);
        if (frame.removed?.length) metrics.removedResources.inc(label, frame.removed.length);
        if (frame.changeAt !== undefined) metrics.pushLatency.observe(label, Number(now - frame.changeAt) / 1e9);
        log.debug(spec.frameFields(frame), 'xds push');
        writer.write(frame);
      }
    };
    const schedule = (): void => {
      if (scheduled || closed) return;
      scheduled = true;
      setImmediate(flush);
    };
    const writer = spec.writer(() => {
      if (!closed && state.pending) schedule();
    });

    const offChange = source.onChange((change) => {
      if (state.noteChange(change)) schedule();
    });
    this.streams.set(id, { state, call: call as ServerDuplexStream<unknown, unknown> });
    metrics.connectedClients.inc({ api });

    const close = (why: string): void => {
      if (closed) return;
      closed = true;
      offChange();
      this.streams.delete(id);
      metrics.connectedClients.dec({ api });
      log.info({ nodeId: state.client?.nodeId, why }, `xds ${api} stream closed`);
    };

    call.on('data', (request: Req) => {
      if (closed) return;
      let subscription: Record<string, unknown> | undefined;
      try {
        subscription = spec.handleRequest(request);
      } catch (err) {
        const message = err instanceof XdsRequestError ? err.message : `cannot handle the request: ${String(err)}`;
        log.warn({ err: message }, 'xds request refused; ending the stream');
        close('bad request');
        call.emit('error', { code: err instanceof XdsRequestError ? err.code : status.INVALID_ARGUMENT, details: message });
        return;
      }
      if (subscription) {
        log.info({ nodeId: state.client?.nodeId, typeUrl: request.typeUrl, ...subscription }, `xds ${api} subscription`);
        if (!source.typeUrls.includes(request.typeUrl)) {
          const gets = api === 'delta' ? 'no resources' : 'empty responses';
          log.warn({ typeUrl: request.typeUrl }, `client subscribed to a type this server does not serve; it will get ${gets}`);
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

  /** Each open stream as the admin views show it: its client and `describe` of each subscribed type. */
  views<T>(describe: (state: S, typeUrl: string) => T | undefined): Array<AdsStreamView<T>> {
    return [...this.streams].map(([id, { state }]) => {
      const types: Record<string, T> = {};
      for (const typeUrl of state.subscribedTypes()) {
        const d = describe(state, typeUrl);
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

/**
 * A writer that holds flushes while `maxQueued` responses handed to gRPC are not yet written to
 * the transport (counted by write callbacks).
 */
export function queueLimitedWriter<F>(call: ServerDuplexStream<unknown, F>, maxQueued: number): (resume: () => void) => FrameWriter<F> {
  return (resume) => {
    let queued = 0;
    const written = (): void => {
      queued--;
      if (queued < maxQueued) resume();
    };
    return {
      get ready() {
        return queued < maxQueued;
      },
      write(frame) {
        queued++;
        call.write(frame, written);
      },
    };
  };
}

/** A writer that holds flushes from the write that returns false until the stream's 'drain'. */
export function drainWriter<F>(call: ServerDuplexStream<unknown, unknown>, write: (frame: F) => boolean): (resume: () => void) => FrameWriter<F> {
  return (resume) => {
    let waitingForDrain = false;
    return {
      get ready() {
        return !waitingForDrain;
      },
      write(frame) {
        if (write(frame) || waitingForDrain) return;
        waitingForDrain = true;
        call.once('drain', () => {
          waitingForDrain = false;
          resume();
        });
      },
    };
  };
}
