// Istio's four request metrics (istio_requests_total and the duration / request size / response
// size histograms) kept as plain counters per label set, so recording a request costs a map
// lookup and a few additions: the label set of a request is found by a short key (the
// connection's source labels are resolved once per connection, the Service labels once per
// cluster) and built only the first time it is seen. The registry reads them at scrape time
// through the same interface prom-client's own metrics offer (`get()`), so the exposition text,
// and the sum across worker processes (prom-client's AggregatorRegistry), are unchanged.
import type { Registry } from 'prom-client';

type Labels = Readonly<Record<string, string>>;

interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

interface MetricSnapshot {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: MetricValue[];
  aggregator: 'sum';
}

class HistogramCells {
  /** Observations per bucket (not cumulative); the last cell is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(buckets: number) {
    this.counts = new Float64Array(buckets + 1);
  }
}

/** One label set of the four metrics. */
export class RequestSeries {
  requests = 0;
  readonly duration: HistogramCells;
  readonly requestBytes: HistogramCells;
  readonly responseBytes: HistogramCells;
  constructor(
    readonly labels: Labels,
    m: RequestSeriesMetrics,
  ) {
    this.duration = new HistogramCells(m.durationBuckets.length);
    this.requestBytes = new HistogramCells(m.sizeBuckets.length);
    this.responseBytes = new HistogramCells(m.sizeBuckets.length);
  }
}

function bucketIndex(buckets: readonly number[], v: number): number {
  let i = 0;
  while (i < buckets.length && v > buckets[i]!) i++;
  return i;
}

function observe(cells: HistogramCells, buckets: readonly number[], v: number): void {
  cells.counts[bucketIndex(buckets, v)]!++;
  cells.sum += v;
  cells.count++;
}

/** A metric the prom-client Registry reads like its own (name, help, type, get()). */
interface ReadableMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: 'sum';
  get(): Promise<MetricSnapshot>;
  reset(): void;
}

export class RequestSeriesMetrics {
  private readonly series = new Map<string, RequestSeries>();
  /** Changes whenever the series are dropped (a reset, or the bound): series held elsewhere are stale then. */
  generation = 0;

  constructor(
    registry: Registry,
    readonly durationBuckets: readonly number[],
    readonly sizeBuckets: readonly number[],
  ) {
    const counter = (name: string, help: string): ReadableMetric => ({
      name,
      help,
      type: 'counter',
      aggregator: 'sum',
      get: async () => ({
        name,
        help,
        type: 'counter',
        aggregator: 'sum',
        values: [...this.series.values()].map((s) => ({ value: s.requests, labels: { ...s.labels } })),
      }),
      reset: () => this.drop(),
    });
    const histogram = (name: string, help: string, buckets: readonly number[], cells: (s: RequestSeries) => HistogramCells): ReadableMetric => ({
      name,
      help,
      type: 'histogram',
      aggregator: 'sum',
      get: async () => {
        const values: MetricValue[] = [];
        for (const s of this.series.values()) {
          const c = cells(s);
          let acc = 0;
          for (let i = 0; i < buckets.length; i++) {
            acc += c.counts[i]!;
            values.push({ value: acc, labels: { ...s.labels, le: buckets[i]! }, metricName: `${name}_bucket` });
          }
          values.push({ value: c.count, labels: { ...s.labels, le: '+Inf' }, metricName: `${name}_bucket` });
          values.push({ value: c.sum, labels: { ...s.labels }, metricName: `${name}_sum` });
          values.push({ value: c.count, labels: { ...s.labels }, metricName: `${name}_count` });
        }
        return { name, help, type: 'histogram', aggregator: 'sum', values };
      },
      reset: () => this.drop(),
    });
    for (const m of [
      counter('istio_requests_total', 'Requests handled by the waypoint'),
      histogram('istio_request_duration_milliseconds', 'Request duration at the waypoint, ms', durationBuckets, (s) => s.duration),
      histogram('istio_request_bytes', 'Request sizes (headers and body), bytes', sizeBuckets, (s) => s.requestBytes),
      histogram('istio_response_bytes', 'Response sizes (headers and body), bytes', sizeBuckets, (s) => s.responseBytes),
    ]) {
      // The Registry's type wants prom-client's Metric class; it only calls name/help/type/get().
      registry.registerMetric(m as unknown as Parameters<Registry['registerMetric']>[0]);
    }
  }

  /** The series under `key`, made with `labels()` the first time the key is seen. */
  seriesFor(key: string, labels: () => Labels): RequestSeries {
    let s = this.series.get(key);
    if (!s) {
      // Bounded: a label set per (source, service, endpoint, protocol, status, flags); a pathological
      // churn of them starts over rather than growing without limit.
      if (this.series.size >= 50_000) this.drop();
      this.series.set(key, (s = new RequestSeries(labels(), this)));
    }
    return s;
  }

  private drop(): void {
    this.series.clear();
    this.generation++;
  }

  record(s: RequestSeries, durationMs: number, requestBytes: number, responseBytes: number): void {
    s.requests++;
    observe(s.duration, this.durationBuckets, durationMs);
    observe(s.requestBytes, this.sizeBuckets, requestBytes);
    observe(s.responseBytes, this.sizeBuckets, responseBytes);
  }
}
