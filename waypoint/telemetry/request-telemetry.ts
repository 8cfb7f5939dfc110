// What the waypoint records of each finished request: Istio's request metrics (a map lookup and a
// few additions per request, request-series.ts), the access log and the span. Access-log lines
// and spans are queued and written/exported in batches off the request path (a timer, and on
// close), not one write per request.
import type { Logger } from '../../common/log';
import type { RecentRecords } from '../../common/recent-records';
import type { Exchange } from '../proxy/exchange';
import type { WaypointMetrics } from './metrics';
import { RecentRequests } from './recent-requests';
import type { OtlpExporter } from './otlp';

const ACCESS_LOG_FLUSH_MS = 200;
const ACCESS_LOG_MAX_QUEUE = 10_000;

interface AccessEntry {
  method: string;
  path: string;
  authority: string;
  protocol: string;
  status: number;
  grpcStatus: string | undefined;
  flags: string;
  detail: string | undefined;
  cluster: string | undefined;
  upstream: string | undefined;
  source: string;
  principal: string | undefined;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
  traceId: string;
}

export class RequestTelemetry {
  private queue: AccessEntry[] = [];
  private dropped = 0;
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly accessLogOn: boolean;
  private readonly recent: RecentRequests | undefined;

  constructor(
    private readonly metrics: WaypointMetrics,
    private readonly accessLog: Logger,
    private readonly otlp: OtlpExporter | undefined,
    ring?: RecentRecords,
  ) {
    this.recent = ring ? new RecentRequests(ring) : undefined;
    this.accessLogOn = accessLog.isLevelEnabled('info');
    if (this.accessLogOn) {
      this.timer = setInterval(() => this.flush(), ACCESS_LOG_FLUSH_MS);
      this.timer.unref();
    }
  }

  /** The request is over (its response closed): count it, log it, export its span. */
  finished(ex: Exchange): void {
    const endNs = process.hrtime.bigint();
    const ms = Number(endNs - ex.startNs) / 1e6;
    if (ex.status === 0) {
      ex.flags.push('DC');
      ex.status = ex.res.headersSent ? ex.res.statusCode : 0;
    }
    const ct = ex.req.headers['content-type'];
    const flags = this.metrics.recordRequest(
      {
        peer: ex.conn,
        cluster: ex.cluster,
        authority: ex.view.authority,
        endpointIdentity: ex.upstreamIdentity,
        endpointWorkload: ex.upstreamWorkload,
        contentType: typeof ct === 'string' ? ct : undefined,
        status: ex.status,
        grpcStatus: ex.grpcStatus,
        flags: ex.flags,
      },
      ms,
      ex.requestBytes,
      ex.responseBytes,
    );
    // The recent-records ring (15020 /recent): the metrics' facts plus method and status, no path.
    this.recent?.push({
      identity: ex.conn.principal,
      service: ex.view.authority,
      port: ex.conn.port,
      method: ex.view.method,
      status: ex.status,
      flags,
      detail: ex.detail,
      cluster: ex.cluster,
      bytesSent: ex.requestBytes,
      bytesReceived: ex.responseBytes,
      durationMs: ms,
    });
    if (this.accessLogOn) {
      if (this.queue.length >= ACCESS_LOG_MAX_QUEUE) this.dropped++;
      else
        this.queue.push({
          method: ex.view.method,
          path: ex.view.path,
          authority: ex.view.authority,
          protocol: ex.h2 ? 'HTTP/2' : 'HTTP/1.1',
          status: ex.status,
          grpcStatus: ex.grpcStatus || undefined,
          flags,
          detail: ex.detail || undefined,
          cluster: ex.cluster || undefined,
          upstream: ex.upstreamHost || undefined,
          source: ex.conn.sourceIp,
          principal: ex.conn.principal,
          bytesIn: ex.requestBytes,
          bytesOut: ex.responseBytes,
          durationMs: Math.round(ms * 1000) / 1000,
          traceId: ex.span.traceId,
        });
    }
    if (this.otlp) {
      const nowNs = BigInt(Date.now()) * 1_000_000n;
      this.otlp.add({
        context: ex.span,
        name: `${ex.view.authority}${ex.view.path.split('?')[0]}`,
        startNs: nowNs - (endNs - ex.startNs),
        endNs: nowNs,
        attributes: {
          'http.request.method': ex.view.method,
          'url.path': ex.view.path,
          'http.response.status_code': ex.status,
          'server.address': ex.view.authority,
          upstream_cluster: ex.cluster,
          response_flags: flags,
        },
        error: ex.status >= 500 || ex.status === 0,
      });
    }
  }

  /** Write the queued access-log lines. */
  flush(): void {
    const q = this.queue;
    if (q.length === 0 && this.dropped === 0) return;
    this.queue = [];
    for (const e of q) this.accessLog.info(e, 'request');
    if (this.dropped > 0) {
      this.accessLog.warn({ dropped: this.dropped }, 'access log lines dropped (more than 10000 requests between two writes)');
      this.dropped = 0;
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.flush();
  }
}
