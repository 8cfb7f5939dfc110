// One HTTP request through the waypoint (HTTP/1.1 and HTTP/2 share this path: http1/server.ts's
// and http2/server.ts's request/response pairs), in stages that each live in their own module:
//   match      the listener, its route table (compiled once per config) and the first route;
//   filters    rbac, local_ratelimit, fault (filters.ts);
//   action     direct response, redirect, or forwarding: the cluster and the upstream head
//              (upstream-request.ts), mirrors (mirror.ts), attempts with retries, timeouts,
//              circuit breakers and outlier detection (attempts.ts), the response (respond.ts);
//   telemetry  metrics, access log and span when the response closes (telemetry/request-telemetry.ts).
// Local replies (no route, denials, failures) are local-reply.ts.
import type { RecentRecords } from '../../common/recent-records';
import type { Logger } from '../../common/log';
import { H1Response } from '../http1/server';
import { H2Request } from '../http2/server';
import { applyMutations, type MutableHeaders } from '../config/headers';
import { requestView } from '../config/request';
import { matchRoute, redirectLocation } from '../config/routes';
import type { WaypointMetrics } from '../telemetry/metrics';
import type { OtlpExporter } from '../telemetry/otlp';
import { RequestTelemetry } from '../telemetry/request-telemetry';
import { spanFor } from '../telemetry/trace';
import { Forwarding } from './attempts';
import { BodyTee } from './body-tee';
import { Exchange, type ConnectionInfo, type DownstreamRequest, type DownstreamResponse } from './exchange';
import { runHttpFilters } from './filters';
import { localReply } from './local-reply';
import { mirrorRequest } from './mirror';
import type { ConfigState } from './state';
import type { UpstreamTransport } from './upstream';
import { chooseCluster, upstreamRequest } from './upstream-request';
import type { HoldRefusal, Warming } from './warming';

export type { ConnectionInfo, DownstreamRequest, DownstreamResponse } from './exchange';

export interface HandlerDeps {
  readonly state: ConfigState;
  readonly transport: UpstreamTransport;
  readonly metrics: WaypointMetrics;
  readonly accessLog: Logger;
  readonly otlp: OtlpExporter | undefined;
  /** The recent requests served on 15020 at /recent (common/recent-records.ts). */
  readonly recent?: RecentRecords;
  /** Requests buffered for retries and mirrors up to this many bytes (Envoy's per-request buffer). */
  readonly bufferLimit: number;
  /** Where requests wait for their listener's routes (none: answered 503 at once). */
  readonly warming?: Warming;
}

const EXCHANGE = Symbol('nodemesh.exchange');
type TrackedResponse = DownstreamResponse & { [EXCHANGE]?: Exchange; [TELEMETRY]?: RequestTelemetry };
const TELEMETRY = Symbol('nodemesh.telemetry');

/** The response closed: the request is over (a shared listener; the exchange rides on the response). */
function onResponseClose(this: TrackedResponse): void {
  const ex = this[EXCHANGE];
  if (!ex) return;
  // The client went away before the upstream answered: the attempt is reset, not left to run.
  ex.inFlight?.abandon();
  this[TELEMETRY]!.finished(ex);
}

function ignore(): void {}

/** Whether `s` has whitespace (as /\s/ finds it): visible ASCII is checked without the regular expression. */
function hasWhitespace(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 32 || c >= 127) return /\s/.test(s);
  }
  return false;
}

export class RequestHandler {
  readonly telemetry: RequestTelemetry;
  private readonly afterFilters = (ex: Exchange): void => this.act(ex);
  private readonly resume = (ex: Exchange): void => this.route(ex);
  /** An HTTP/1.1 response closed: the request is over (as onResponseClose). */
  private readonly exchangeClosed = (ex: Exchange): void => {
    ex.inFlight?.abandon();
    this.telemetry.finished(ex);
  };

  constructor(private readonly d: HandlerDeps) {
    this.telemetry = new RequestTelemetry(d.metrics, d.accessLog, d.otlp, d.recent);
  }

  handle(req: DownstreamRequest, res: DownstreamResponse, conn: ConnectionInfo): void {
    const startNs = process.hrtime.bigint();
    const h = req.headers;
    const h2 = req.httpVersionMajor === 2;
    const authority = String((h2 ? h[':authority'] : undefined) ?? h.host ?? '');
    const path = req.url ?? '';
    const view = requestView(req.method ?? '', path, authority, 'http', h as MutableHeaders);
    const ct = h['content-type'];
    const tp = h.traceparent;
    // Known before the headers are edited for the upstream (transfer-encoding is hop-by-hop).
    const bodyExpected = h2
      ? !(req as H2Request).stream.endAfterHeaders
      : h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0');
    const ex = new Exchange(
      req,
      res,
      conn,
      view,
      typeof ct === 'string' && ct.startsWith('application/grpc'),
      startNs,
      spanFor(typeof tp === 'string' ? tp : undefined),
      bodyExpected,
    );
    // The waypoint's HTTP/1.1 response has a slot for this one listener and its exchange (and
    // never emits 'error'); other responses carry the exchange for a shared listener.
    if (res instanceof H1Response) res.whenClosed(this.exchangeClosed, ex);
    else {
      const tracked = res as TrackedResponse;
      tracked[EXCHANGE] = ex;
      tracked[TELEMETRY] = this.telemetry;
      res.on('close', onResponseClose);
      res.on('error', ignore);
    }
    // An HTTP/2 request and its response are one stream: one listener covers both.
    if (!h2) req.on('error', ignore);
    if (path.charCodeAt(0) !== 47 /* / */ || !authority || hasWhitespace(path))
      return localReply(ex, 400, 'bad request: the request needs an origin-form path and a Host/:authority', '-');
    this.route(ex);
  }

  /** Match: the listener, its routes and the first route (held while the routes have not arrived, proxy/warming.ts). */
  private route(ex: Exchange): void {
    try {
      const st = this.d.state;
      const conn = ex.conn;
      const listener = conn.listener !== undefined ? st.listeners.get(conn.listener) : st.listenerForPort(conn.port);
      const config = listener?.config.kind === 'http' ? listener.config : undefined;
      const http = config ? listener : undefined;
      const table = http ? st.routeTable(http) : undefined;
      // Until the first complete configuration, and while this listener's routes are missing: held.
      let refused: HoldRefusal | undefined;
      if (this.d.warming && (st.firstConfigPending || (http && !table))) {
        refused = this.d.warming.hold(ex, this.resume);
        if (!refused) return;
      }
      if (!http || !config) return localReply(ex, 404, `no HTTP listener for port ${conn.port}`, 'NR');
      if (!table) {
        const why =
          refused?.reason === 'expired'
            ? `not received within ${refused.waitedMs} ms (the control plane has not sent this RouteConfiguration)`
            : refused?.reason === 'full'
              ? `not received yet (${refused.held} requests already wait for routes)`
              : refused?.reason === 'stopping'
                ? 'not received before the waypoint stopped'
                : refused?.reason === 'disabled'
                  ? 'not received yet (requests are not held for routes: --warming-max-held 0)'
                  : 'not received yet';
        return localReply(ex, 503, `routes ${config.rdsName ?? ''} ${why}`, 'NR');
      }
      const match = matchRoute(table, ex.view);
      if (!match) return localReply(ex, 404, 'route not found', 'NR');
      ex.listener = http;
      ex.routeTable = table;
      ex.match = match;
      const a = match.route.action;
      if (a.kind === 'forward') ex.target = chooseCluster(a, ex);
      runHttpFilters(ex, this.d, this.afterFilters);
    } catch (err) {
      this.failed(ex, err);
    }
  }

  private failed(ex: Exchange, err: unknown): void {
    this.d.accessLog.error({ err: err instanceof Error ? err.stack : String(err) }, 'waypoint request failed');
    localReply(ex, 500, 'internal error in the waypoint', '-');
  }

  /** The route's action, once the filters let the request through. */
  private act(ex: Exchange): void {
    try {
      const m = ex.match!;
      const route = m.route;
      const a = route.action;
      const rcRes = ex.routeTable!.responseHeaders;
      if (a.kind === 'direct') {
        const h: MutableHeaders = {};
        applyMutations(h, [route.responseHeaders, m.virtualHost.responseHeaders, rcRes]);
        return localReply(ex, a.status, a.body, '', h, true);
      }
      if (a.kind === 'redirect') {
        const h: MutableHeaders = { location: redirectLocation(a, ex.view, route.matchedPrefix) };
        applyMutations(h, [route.responseHeaders, m.virtualHost.responseHeaders, rcRes]);
        return localReply(ex, a.status, '', '', h, true);
      }
      const t = ex.target!;
      if (!t.cluster) return localReply(ex, 503, 'no cluster for the route (cluster_header missing)', 'NC');
      const rt = this.d.state.clusters.get(t.cluster);
      ex.cluster = t.cluster;
      if (!rt) return localReply(ex, 503, `cluster ${t.cluster} not found`, 'NC');
      const head = upstreamRequest(ex, a, t);
      const tee = new BodyTee(ex.req instanceof H2Request ? ex.req.stream : ex.req, this.d.bufferLimit, ex, ex.hasBody);
      for (const mirror of a.mirrors)
        if (Math.random() < mirror.fraction)
          mirrorRequest(this.d.state, this.d.transport, mirror.cluster, mirror.appendShadowSuffix, { ...head, method: ex.req.method ?? 'GET' }, tee);
      new Forwarding(this.d, ex, rt, a, head, tee, [t.responseHeaders, route.responseHeaders, m.virtualHost.responseHeaders, rcRes]).next();
    } catch (err) {
      this.failed(ex, err);
    }
  }

  close(): void {
    this.telemetry.close();
  }
}
