// A small OTLP/HTTP JSON span exporter: spans are batched in memory (bounded; the oldest are
// dropped when the collector is slow or away) and POSTed to <endpoint>/v1/traces with fetch.
import type { Logger } from '../../common/log';
import type { SpanContext } from './trace';

export interface FinishedSpan {
  readonly context: SpanContext;
  readonly name: string;
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly attributes: Record<string, string | number>;
  readonly error: boolean;
}

const MAX_QUEUE = 2048;
const MAX_BATCH = 512;

export class OtlpExporter {
  private queue: FinishedSpan[] = [];
  private timer: NodeJS.Timeout;
  private sending = false;
  dropped = 0;
  exported = 0;

  constructor(
    private readonly endpoint: string,
    private readonly serviceName: string,
    private readonly logger: Logger,
    intervalMs = 1000,
  ) {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  add(span: FinishedSpan): void {
    if (this.queue.length >= MAX_QUEUE) {
      this.queue.shift();
      this.dropped++;
    }
    this.queue.push(span);
  }

  async flush(): Promise<void> {
    if (this.sending || this.queue.length === 0) return;
    this.sending = true;
    const batch = this.queue.splice(0, MAX_BATCH);
    try {
      const res = await fetch(new URL('/v1/traces', this.endpoint), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(this.encode(batch)),
        signal: AbortSignal.timeout(5000),
      });
      if (!res.ok) throw new Error(`collector answered HTTP ${res.status}`);
      await res.arrayBuffer();
      this.exported += batch.length;
    } catch (err) {
      this.dropped += batch.length;
      this.logger.warn(
        { endpoint: this.endpoint, spans: batch.length, err: err instanceof Error ? err.message : String(err) },
        'OTLP export failed; spans dropped',
      );
    } finally {
      this.sending = false;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }

  private encode(spans: FinishedSpan[]): unknown {
    return {
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: this.serviceName } }] },
          scopeSpans: [
            {
              scope: { name: 'nodemesh-waypoint' },
              spans: spans.map((s) => ({
                traceId: s.context.traceId,
                spanId: s.context.spanId,
                ...(s.context.parentSpanId ? { parentSpanId: s.context.parentSpanId } : {}),
                name: s.name,
                kind: 2, // SPAN_KIND_SERVER
                startTimeUnixNano: s.startNs.toString(),
                endTimeUnixNano: s.endNs.toString(),
                attributes: Object.entries(s.attributes).map(([key, v]) => ({
                  key,
                  value: typeof v === 'number' ? { intValue: String(v) } : { stringValue: v },
                })),
                status: { code: s.error ? 2 : 1 },
              })),
            },
          ],
        },
      ],
    };
  }
}
