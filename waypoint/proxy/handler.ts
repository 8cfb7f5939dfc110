// One HTTP request through the waypoint (HTTP/1.1 and HTTP/2 share this path through Node's
// compatibility API): route, the HTTP filters (rbac, local_ratelimit, fault), then the route's
// action — direct response, redirect, or forwarding with header mutation, rewrites, mirroring,
// retries with back-off, timeouts, circuit breakers and outlier detection — and telemetry.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from '../../common/log';
import type { FaultPolicy } from '../config/fault';
import { applyMutations, type HeaderMutation, type MutableHeaders } from '../config/headers';
import type { CompiledListener } from '../config/listeners';
import type { RbacEngine } from '../config/rbac';
import type { RateLimitPolicy } from '../config/ratelimit';
import { requestView, type RequestView } from '../config/request';
import { backoffMs, matchRoute, redirectLocation, type CompiledRetry, type ForwardAction, type RouteMatchResult } from '../config/routes';
import type { WaypointMetrics } from '../telemetry/metrics';
import type { OtlpExporter } from '../telemetry/otlp';
import { formatTraceparent, spanFor, type SpanContext } from '../telemetry/trace';
import type { EndpointState } from './balancer';
import type { ClusterRuntime, ConfigState } from './state';
import { isHopByHop, UpstreamFailure, type Attempt, type UpstreamHead, type UpstreamTransport } from './upstream';

export type DownstreamRequest = IncomingMessage | Http2ServerRequest;
export type DownstreamResponse = ServerResponse | Http2ServerResponse;

/** Where a request came from: the connection it arrived on. */
export interface ConnectionInfo {
  readonly port: number;
  /** The listener (by name) the connection belongs to, when known (HBONE); else by port. */
  readonly listener?: string;
  /** SPIFFE ID of the HBONE peer; undefined for plaintext. */
  readonly principal: string | undefined;
  /** The HBONE CONNECT's W3C baggage (the source workload, for the metric labels). */
  readonly baggage?: string;
  readonly sourceIp: string;
  readonly destinationIp: string;
}

export interface HandlerDeps {
  readonly state: ConfigState;
  readonly transport: UpstreamTransport;
  readonly metrics: WaypointMetrics;
  readonly accessLog: Logger;
  readonly otlp: OtlpExporter | undefined;
  /** Requests buffered for retries and mirrors up to this many bytes (Envoy's per-request buffer). */
  readonly bufferLimit: number;
}

const GRPC_FROM_HTTP: Record<number, number> = { 400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14 };
const GRPC_RETRY_ON: Record<string, string> = { '1': 'cancelled', '4': 'deadline-exceeded', '13': 'internal', '8': 'resource-exhausted', '14': 'unavailable' };

interface Exchange {
  readonly req: DownstreamRequest;
  readonly res: DownstreamResponse;
  readonly conn: ConnectionInfo;
  readonly view: RequestView;
  readonly grpc: boolean;
  readonly startNs: bigint;
  readonly span: SpanContext;
  requestBytes: number;
  responseBytes: number;
  status: number;
  flags: string[];
  cluster: string;
  upstreamHost: string;
  /** The chosen endpoint's `nodemesh.identity` (destination_principal). */
  upstreamIdentity: string | undefined;
  grpcStatus: string;
  detail: string;
}

/** Keeps the request body for replay (retries, mirror) while it streams to the current attempt. */
class BodyTee {
  chunks: Buffer[] = [];
  size = 0;
  overflow = false;
  ended = false;
  private sink: Writable | undefined;
  private readonly onDrain = (): void => {
    this.src.resume();
  };
  constructor(
    private readonly src: Readable,
    private readonly limit: number,
    onBytes: (n: number) => void,
  ) {
    src.on('data', (c: Buffer) => {
      onBytes(c.length);
      if (!this.overflow) {
        this.size += c.length;
        if (this.size > this.limit) {
          this.overflow = true;
          this.chunks = [];
        } else this.chunks.push(c);
      }
      if (this.sink && !this.sink.write(c)) {
        src.pause();
        this.sink.once('drain', this.onDrain);
      } else if (!this.sink) src.pause();
    });
    src.once('end', () => {
      this.ended = true;
      this.sink?.end();
    });
    src.on('error', () => undefined);
  }
  /** Send the body to a new attempt; false when it cannot be replayed (too large, already streamed). */
  attach(sink: Writable, first: boolean): boolean {
    if (!first && this.overflow) return false;
    this.detach();
    this.sink = sink;
    sink.on('error', () => undefined);
    if (!first) for (const c of this.chunks) sink.write(c);
    if (this.ended) sink.end();
    else this.src.resume();
    return true;
  }
  detach(): void {
    if (this.sink) this.sink.off('drain', this.onDrain);
    this.sink = undefined;
  }
  /** The whole body, once received, if it fit the buffer. */
  complete(): Promise<Buffer | undefined> {
    if (this.ended) return Promise.resolve(this.overflow ? undefined : Buffer.concat(this.chunks));
    return new Promise((resolve) => this.src.once('end', () => resolve(this.overflow ? undefined : Buffer.concat(this.chunks))));
  }
}

export class RequestHandler {
  constructor(private readonly d: HandlerDeps) {}

  handle(req: DownstreamRequest, res: DownstreamResponse, conn: ConnectionInfo): void {
    const startNs = process.hrtime.bigint();
    const h2 = req.httpVersionMajor === 2;
    const authority = String((h2 ? req.headers[':authority'] : undefined) ?? req.headers.host ?? '');
    const path = req.url ?? '';
    const method = req.method ?? '';
    const view = requestView(method, path, authority, 'http', req.headers as MutableHeaders);
    const ct = String(req.headers['content-type'] ?? '');
    const ex: Exchange = {
      req,
      res,
      conn,
      view,
      grpc: ct.startsWith('application/grpc'),
      startNs,
      span: spanFor(typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined),
      requestBytes: 0,
      responseBytes: 0,
      status: 0,
      flags: [],
      cluster: '',
      upstreamHost: '',
      upstreamIdentity: undefined,
      grpcStatus: '',
      detail: '',
    };
    res.on('close', () => this.finish(ex));
    res.on('error', () => undefined);
    req.on('error', () => undefined);
    try {
      if (!path.startsWith('/') || !authority || /[\s]/.test(path)) return this.local(ex, 400, 'bad request: the request needs an origin-form path and a Host/:authority', '-');
      const listener = conn.listener !== undefined ? this.d.state.listeners.get(conn.listener) : this.d.state.listenerForPort(conn.port);
      if (!listener || listener.config.kind !== 'http') return this.local(ex, 404, `no HTTP listener for port ${conn.port}`, 'NR');
      const table = this.d.state.routeTable(listener);
      if (!table) return this.local(ex, 503, `routes ${listener.config.rdsName ?? ''} not received yet`, 'NR');
      const match = matchRoute(table, view);
      if (!match) return this.local(ex, 404, 'route not found', 'NR');
      void this.filtersThenAct(ex, listener, match, table.requestHeaders, table.responseHeaders).catch((err: unknown) => {
        this.d.accessLog.error({ err: err instanceof Error ? err.stack : String(err) }, 'waypoint request failed');
        this.local(ex, 500, 'internal error in the waypoint', '-');
      });
    } catch (err) {
      this.d.accessLog.error({ err: err instanceof Error ? err.stack : String(err) }, 'waypoint request failed');
      this.local(ex, 500, 'internal error in the waypoint', '-');
    }
  }

  private async filtersThenAct(ex: Exchange, listener: CompiledListener, m: RouteMatchResult, rcReq: HeaderMutation, rcRes: HeaderMutation): Promise<void> {
    if (listener.config.kind !== 'http') return;
    const route = m.route;
    const pick = <T>(name: 'rbac' | 'fault' | 'rateLimit', base: T | undefined): T | undefined => {
      const r = route.perFilter[name] as T | null | undefined;
      if (r === null) return undefined;
      if (r !== undefined) return r;
      const v = m.virtualHost.perFilter[name] as T | null | undefined;
      if (v === null) return undefined;
      return v ?? base;
    };
    const target = route.action.kind === 'forward' ? this.chooseCluster(route.action, ex) : undefined;
    for (const f of listener.config.filters) {
      if (f.kind === 'rbac') {
        const engine = pick<RbacEngine>('rbac', f.engine);
        if (f.shadow) {
          const s = f.shadow.evaluate(this.subject(ex));
          if (!s.allowed) this.d.accessLog.info({ policy: s.policy, path: ex.view.path }, 'rbac shadow rules would deny');
        }
        if (!engine) continue;
        const verdict = engine.evaluate(this.subject(ex));
        if (!verdict.allowed) {
          this.d.metrics.rbacDenied.inc({ listener: listener.name, policy: verdict.policy ?? '' });
          ex.detail = `rbac_access_denied_matched_policy[${verdict.policy ?? 'none'}]`;
          return this.local(ex, 403, 'RBAC: access denied', '-');
        }
      } else if (f.kind === 'ratelimit') {
        const p = pick<RateLimitPolicy>('rateLimit', f.policy);
        if (!p || Math.random() >= p.enabled) continue;
        if (!p.bucket.take() && Math.random() < p.enforced) {
          this.d.metrics.rateLimited.inc({ stat_prefix: p.statPrefix });
          const extra: MutableHeaders = { 'x-envoy-ratelimited': 'true' };
          applyMutations(extra, [p.responseHeaders]);
          return this.local(ex, p.status, 'local_rate_limited', 'RL', extra);
        }
      } else if (f.kind === 'fault') {
        const p = pick<FaultPolicy>('fault', f.policy);
        if (!p || !p.headers.every((h) => h(ex.view))) continue;
        if (p.upstreamCluster && p.upstreamCluster !== target?.cluster) continue;
        if (p.delay && Math.random() < p.delay.fraction) {
          ex.flags.push('DI');
          await new Promise((r) => setTimeout(r, p.delay!.ms));
          if (ex.res.destroyed) return;
        }
        if (p.abort && Math.random() < p.abort.fraction) {
          ex.flags.push('FI');
          if (p.abort.grpcStatus !== undefined && ex.grpc) return this.grpcLocal(ex, p.abort.grpcStatus, 'fault filter abort');
          return this.local(ex, p.abort.httpStatus ?? 503, 'fault filter abort', '');
        }
      }
    }
    const a = route.action;
    const resLevels = [route.responseHeaders, m.virtualHost.responseHeaders, rcRes];
    if (a.kind === 'direct') {
      const h: MutableHeaders = {};
      applyMutations(h, resLevels);
      return this.local(ex, a.status, a.body, '', h, true);
    }
    if (a.kind === 'redirect') {
      const h: MutableHeaders = { location: redirectLocation(a, ex.view, route.matchedPrefix) };
      applyMutations(h, resLevels);
      return this.local(ex, a.status, '', '', h, true);
    }
    const t = target!;
    if (!t.cluster) return this.local(ex, 503, 'no cluster for the route (cluster_header missing)', 'NC');
    const rt = this.d.state.clusters.get(t.cluster);
    ex.cluster = t.cluster;
    if (!rt) return this.local(ex, 503, `cluster ${t.cluster} not found`, 'NC');
    // Request headers: copy, then mutate weighted cluster -> route -> virtual host -> route configuration.
    const headers: MutableHeaders = {};
    for (const [k, v] of Object.entries(ex.req.headers)) if (!isHopByHop(k)) headers[k] = v;
    if (ex.req.headers.te === 'trailers') headers.te = 'trailers';
    headers['x-forwarded-proto'] = headers['x-forwarded-proto'] ?? 'http';
    if (!headers['x-request-id']) headers['x-request-id'] = randomUUID();
    headers.traceparent = formatTraceparent(ex.span);
    if (ex.conn.principal) headers['x-forwarded-client-cert'] = `By=;URI=${ex.conn.principal}`;
    applyMutations(headers, [t.requestHeaders, route.requestHeaders, m.virtualHost.requestHeaders, rcReq]);
    let path = ex.view.path;
    if (a.prefixRewrite !== undefined && route.matchedPrefix !== undefined) path = a.prefixRewrite + path.slice(route.matchedPrefix.length);
    else if (a.regexRewrite) {
      const q = path.indexOf('?');
      const p = q < 0 ? path : path.slice(0, q);
      path = p.replace(a.regexRewrite.re, a.regexRewrite.substitution) + (q < 0 ? '' : path.slice(q));
    }
    let authority = ex.view.authority;
    if (t.hostRewrite) authority = t.hostRewrite;
    else if (a.hostRewrite) authority = a.hostRewrite;
    else if (a.hostRewriteHeader && typeof headers[a.hostRewriteHeader] === 'string') authority = headers[a.hostRewriteHeader] as string;
    if (authority !== ex.view.authority) headers['x-forwarded-host'] = ex.view.authority;
    const tee = new BodyTee(ex.req, this.d.bufferLimit, (n) => (ex.requestBytes += n));
    for (const mirror of a.mirrors) if (Math.random() < mirror.fraction) void this.mirror(mirror.cluster, mirror.appendShadowSuffix, ex.req.method ?? 'GET', path, authority, headers, tee);
    await this.forward(ex, rt, a, { method: ex.view.method, path, authority, headers }, tee, [t.responseHeaders, ...resLevels]);
  }

  private chooseCluster(a: ForwardAction, ex: Exchange): { cluster: string; requestHeaders: HeaderMutation; responseHeaders: HeaderMutation; hostRewrite: string | undefined } {
    const none = { remove: [], add: [] };
    if (a.cluster) return { cluster: a.cluster, requestHeaders: none, responseHeaders: none, hostRewrite: undefined };
    if (a.clusterHeader) return { cluster: ex.view.header(a.clusterHeader) ?? '', requestHeaders: none, responseHeaders: none, hostRewrite: undefined };
    const w = a.weighted!;
    let r = Math.floor(Math.random() * w.total);
    for (const t of w.targets) {
      if (r < t.weight) return t;
      r -= t.weight;
    }
    return w.targets[w.targets.length - 1]!;
  }

  private subject(ex: Exchange): Parameters<RbacEngine['evaluate']>[0] {
    return { request: ex.view, principal: ex.conn.principal, sourceIp: ex.conn.sourceIp, destinationIp: ex.conn.destinationIp, destinationPort: ex.conn.port };
  }

  private async forward(
    ex: Exchange,
    rt: ClusterRuntime,
    a: ForwardAction,
    head: { method: string; path: string; authority: string; headers: MutableHeaders },
    tee: BodyTee,
    resLevels: HeaderMutation[],
  ): Promise<void> {
    const retry: CompiledRetry | undefined = a.retry;
    const maxAttempts = 1 + (retry?.numRetries ?? 0);
    const deadline = a.timeoutMs > 0 ? Date.now() + a.timeoutMs : Infinity;
    let last: { head?: UpstreamHead; failure?: UpstreamFailure; endpoint?: EndpointState } = {};
    let previous: EndpointState | undefined;
    for (let attempt = 1; ; attempt++) {
      if (ex.res.destroyed) return;
      const cfg = rt.config;
      if (rt.active >= cfg.breakers.maxRequests) {
        this.d.metrics.overflows.inc({ cluster: cfg.name, breaker: 'max_requests' });
        ex.res.setHeader('x-envoy-overloaded', 'true');
        return this.local(ex, 503, 'upstream overflow: max_requests', 'UO');
      }
      if (rt.pending >= cfg.breakers.maxPendingRequests && rt.active >= cfg.breakers.maxConnections) {
        this.d.metrics.overflows.inc({ cluster: cfg.name, breaker: 'max_pending_requests' });
        ex.res.setHeader('x-envoy-overloaded', 'true');
        return this.local(ex, 503, 'upstream overflow: max_pending_requests', 'UO');
      }
      const ep = rt.balancer.pick(previous);
      if (!ep) return this.local(ex, 503, 'no healthy upstream', 'UH');
      previous = ep;
      ex.upstreamHost = ep.key;
      ex.upstreamIdentity = ep.endpoint.hbone?.identity;
      const remaining = deadline - Date.now();
      const perTry = retry?.perTryTimeoutMs ? Math.min(retry.perTryTimeoutMs, remaining) : remaining;
      const result = await this.attempt(rt, ep, head, tee, attempt === 1, perTry);
      last = { ...result, endpoint: ep };
      const outcome = result.head ? result.head.status : result.failure!.kind === 'overflow' ? undefined : 'local-failure';
      if (outcome !== undefined) {
        const ev = rt.balancer.record(ep, outcome as number | 'local-failure');
        if (ev) {
          this.d.metrics.ejections.inc({ cluster: cfg.name });
          this.d.accessLog.warn({ cluster: cfg.name, endpoint: ev.endpoint, untilMs: ev.untilMs }, 'outlier detection ejected an endpoint');
        }
      }
      if (result.failure?.kind === 'timeout' && Date.now() >= deadline) break;
      if (attempt >= maxAttempts || !retry || !this.retriable(retry, result)) break;
      if (rt.retries >= cfg.breakers.maxRetries) {
        this.d.metrics.overflows.inc({ cluster: cfg.name, breaker: 'max_retries' });
        break;
      }
      const wait = backoffMs(retry, attempt);
      if (Date.now() + wait >= deadline) break;
      result.head?.body.resume();
      rt.retries++;
      this.d.metrics.retries.inc({ cluster: cfg.name });
      await new Promise((r) => setTimeout(r, wait));
      rt.retries--;
      if (tee.overflow) break; // the body streamed past the buffer: it cannot be replayed
    }
    if (last.head) {
      if (maxAttempts > 1 && this.retriable(retry!, last)) ex.flags.push('URX');
      return this.respond(ex, last.head, resLevels, deadline);
    }
    const f = last.failure!;
    if (f.kind === 'timeout') {
      ex.detail = 'upstream_response_timeout';
      return this.local(ex, 504, 'upstream request timeout', 'UT');
    }
    if (maxAttempts > 1) ex.flags.push('URX');
    ex.detail = f.message;
    return this.local(ex, 503, `upstream connect error or disconnect/reset before headers. reset reason: ${f.kind === 'connect-failure' ? 'connection failure' : 'connection termination'}`, f.kind === 'connect-failure' ? 'UF' : 'UC');
  }

  private attempt(rt: ClusterRuntime, ep: EndpointState, head: { method: string; path: string; authority: string; headers: MutableHeaders }, tee: BodyTee, first: boolean, timeoutMs: number): Promise<{ head?: UpstreamHead; failure?: UpstreamFailure }> {
    rt.active++;
    rt.pending++;
    ep.active++;
    let done = false;
    let att: Attempt;
    try {
      att = this.d.transport.send(rt.config, ep.endpoint, head);
    } catch (err) {
      rt.active--;
      rt.pending--;
      ep.active--;
      return Promise.resolve({ failure: new UpstreamFailure('connect-failure', err instanceof Error ? err.message : String(err)) });
    }
    if (!tee.attach(att.sink, first)) {
      att.abort();
      rt.active--;
      rt.pending--;
      ep.active--;
      return Promise.resolve({ failure: new UpstreamFailure('reset', 'request body too large to retry') });
    }
    const release = (): void => {
      rt.active--;
      ep.active--;
    };
    return new Promise((resolve) => {
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(() => {
            if (done) return;
            done = true;
            rt.pending--;
            tee.detach();
            att.abort();
            release();
            resolve({ failure: new UpstreamFailure('timeout', `no response within ${timeoutMs} ms`) });
          }, Math.max(1, timeoutMs))
        : undefined;
      att.response.then(
        (h) => {
          if (done) {
            h.body.resume();
            return;
          }
          done = true;
          clearTimeout(timer);
          rt.pending--;
          let released = false;
          const releaseOnce = (): void => {
            if (released) return;
            released = true;
            release();
          };
          h.body.once('close', releaseOnce);
          h.body.once('end', releaseOnce);
          resolve({ head: h });
        },
        (err: unknown) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          rt.pending--;
          tee.detach();
          release();
          resolve({ failure: err instanceof UpstreamFailure ? err : new UpstreamFailure('reset', String(err)) });
        },
      );
    });
  }

  private retriable(retry: CompiledRetry, r: { head?: UpstreamHead; failure?: UpstreamFailure }): boolean {
    const on = retry.on;
    if (r.failure) {
      switch (r.failure.kind) {
        case 'connect-failure':
          return on.has('connect-failure') || on.has('5xx') || on.has('gateway-error') || on.has('reset');
        case 'reset':
          return on.has('reset') || on.has('5xx');
        case 'timeout':
          return on.has('5xx') || on.has('gateway-error');
        default:
          return false;
      }
    }
    const s = r.head!.status;
    if (on.has('5xx') && s >= 500) return true;
    if (on.has('gateway-error') && (s === 502 || s === 503 || s === 504)) return true;
    if (on.has('retriable-status-codes') && retry.retriableStatusCodes.has(s)) return true;
    if (on.has('retriable-4xx') && s === 409) return true;
    const g = r.head!.headers['grpc-status'];
    if (typeof g === 'string' && GRPC_RETRY_ON[g] && on.has(GRPC_RETRY_ON[g])) return true;
    return false;
  }

  /**
   * Stream the upstream response down. The route timeout spans the whole response (as Envoy's
   * does): when it fires after the headers went out, the response is cut (reset) and flagged UT.
   */
  private respond(ex: Exchange, up: UpstreamHead, levels: HeaderMutation[], deadline: number): void {
    const res = ex.res;
    const headers: MutableHeaders = {};
    for (const [k, v] of Object.entries(up.headers)) if (!isHopByHop(k) && v !== undefined) headers[k] = v;
    applyMutations(headers, levels);
    ex.status = up.status;
    if (typeof up.headers['grpc-status'] === 'string') ex.grpcStatus = up.headers['grpc-status'];
    if (res.destroyed) {
      up.body.destroy();
      return;
    }
    if (typeof up.headers['grpc-status'] === 'string' && ex.req.httpVersionMajor === 2) {
      // A gRPC trailers-only response (status in the headers, END_STREAM): forward it as one,
      // since a gRPC client reads the status from a HEADERS frame that ends the stream.
      const stream = (res as Http2ServerResponse).stream;
      up.body.resume();
      try {
        stream.respond({ ...(headers as Record<string, string | string[]>), ':status': up.status }, { endStream: true });
      } catch (err) {
        ex.detail = `bad upstream response headers: ${err instanceof Error ? err.message : String(err)}`;
        res.destroy();
      }
      return;
    }
    try {
      res.writeHead(up.status, headers as Record<string, string | string[]>);
    } catch (err) {
      up.body.destroy();
      ex.detail = `bad upstream response headers: ${err instanceof Error ? err.message : String(err)}`;
      res.destroy();
      return;
    }
    up.body.on('data', (c: Buffer) => {
      ex.responseBytes += c.length;
    });
    if (Number.isFinite(deadline)) {
      const timer = setTimeout(() => {
        if (res.writableEnded) return;
        ex.flags.push('UT');
        ex.detail = 'upstream_response_timeout';
        up.body.destroy();
        res.destroy();
      }, Math.max(1, deadline - Date.now()));
      res.once('close', () => clearTimeout(timer));
      res.once('finish', () => clearTimeout(timer));
    }
    up.body.pipe(res as Writable, { end: false });
    up.body.once('end', () => {
      void up.trailers.then((t) => {
        const tr: Record<string, string> = {};
        for (const [k, v] of Object.entries(t)) if (v !== undefined && !k.startsWith(':')) tr[k] = Array.isArray(v) ? v.join(',') : v;
        if (tr['grpc-status'] !== undefined) ex.grpcStatus = tr['grpc-status'];
        if (Object.keys(tr).length > 0 && ex.req.httpVersionMajor === 2) res.addTrailers(tr);
        res.end();
      });
    });
    up.body.once('error', () => {
      ex.flags.push('UPE');
      res.destroy();
    });
    up.body.once('close', () => {
      // An HTTP/2 stream closed with NO_ERROR after END_STREAM is complete even if 'end' has not
      // been emitted yet (e.g. a gRPC trailers-only response): its buffered end still drains.
      if ((up.body as { rstCode?: number }).rstCode === 0) return;
      if (!up.body.readableEnded && !res.writableEnded && !ex.flags.includes('UT')) {
        ex.flags.push('UC');
        res.destroy();
      }
    });
    res.once('close', () => {
      if (!up.body.readableEnded) up.body.destroy();
    });
  }

  /** A response made by the waypoint itself; gRPC requests get a trailers-only gRPC status. */
  private local(ex: Exchange, status: number, body: string, flag: string, headers: MutableHeaders = {}, asIs = false): void {
    if (flag && flag !== '-') ex.flags.push(flag);
    if (!ex.detail) ex.detail = body;
    if (ex.grpc && !asIs) return this.grpcLocal(ex, GRPC_FROM_HTTP[status] ?? 2, body);
    const res = ex.res;
    ex.status = status;
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const out: MutableHeaders = { ...headers, 'content-type': body ? 'text/plain' : undefined, 'content-length': String(Buffer.byteLength(body)) };
    for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
    res.writeHead(status, out as Record<string, string>);
    ex.responseBytes += Buffer.byteLength(body);
    res.end(body);
    if (!ex.req.readableEnded) ex.req.resume();
  }

  private grpcLocal(ex: Exchange, grpcStatus: number, message: string): void {
    const res = ex.res;
    ex.status = 200;
    ex.grpcStatus = String(grpcStatus);
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const head = { 'content-type': 'application/grpc', 'grpc-status': String(grpcStatus), 'grpc-message': encodeURIComponent(message) };
    if (ex.req.httpVersionMajor === 2) {
      // Trailers-only: one HEADERS frame that ends the stream, where gRPC clients read the status.
      (res as Http2ServerResponse).stream.respond({ ...head, ':status': 200 }, { endStream: true });
    } else {
      res.writeHead(200, head);
      res.end();
    }
    if (!ex.req.readableEnded) ex.req.resume();
  }

  private async mirror(cluster: string, suffix: boolean, method: string, path: string, authority: string, headers: MutableHeaders, tee: BodyTee): Promise<void> {
    const rt = this.d.state.clusters.get(cluster);
    if (!rt) return;
    const body = await tee.complete();
    if (body === undefined) return; // too large to mirror
    const ep = rt.balancer.pick();
    if (!ep) return;
    // Envoy appends "-shadow" to the host part of the authority.
    const host = suffix ? shadowHost(authority) : authority;
    try {
      const att = this.d.transport.send(rt.config, ep.endpoint, { method, path, authority: host, headers: { ...headers } });
      att.sink.on('error', () => undefined);
      att.sink.end(body);
      const timer = setTimeout(() => att.abort(), 10_000);
      const h = await att.response;
      h.body.resume();
      h.body.once('end', () => clearTimeout(timer));
      h.body.once('close', () => clearTimeout(timer));
    } catch {
      // fire and forget
    }
  }

  private finish(ex: Exchange): void {
    const endNs = process.hrtime.bigint();
    const ms = Number(endNs - ex.startNs) / 1e6;
    if (ex.status === 0) {
      ex.flags.push('DC');
      ex.status = ex.res.headersSent ? ex.res.statusCode : 0;
    }
    const labels = this.d.metrics.requestLabels({
      peer: ex.conn,
      cluster: ex.cluster,
      authority: ex.view.authority,
      endpointIdentity: ex.upstreamIdentity,
      contentType: typeof ex.req.headers['content-type'] === 'string' ? ex.req.headers['content-type'] : undefined,
      status: ex.status,
      grpcStatus: ex.grpcStatus,
      flags: ex.flags,
    });
    const m = this.d.metrics;
    m.requests.inc(labels);
    m.duration.observe(labels, ms);
    m.requestBytes.observe(labels, ex.requestBytes);
    m.responseBytes.observe(labels, ex.responseBytes);
    this.d.accessLog.info(
      {
        method: ex.view.method,
        path: ex.view.path,
        authority: ex.view.authority,
        protocol: ex.req.httpVersionMajor === 2 ? 'HTTP/2' : 'HTTP/1.1',
        status: ex.status,
        grpcStatus: ex.grpcStatus || undefined,
        flags: labels.response_flags,
        detail: ex.detail || undefined,
        cluster: ex.cluster || undefined,
        upstream: ex.upstreamHost || undefined,
        source: ex.conn.sourceIp,
        principal: ex.conn.principal,
        bytesIn: ex.requestBytes,
        bytesOut: ex.responseBytes,
        durationMs: Math.round(ms * 1000) / 1000,
        traceId: ex.span.traceId,
      },
      'request',
    );
    this.d.otlp?.add({
      context: ex.span,
      name: `${ex.view.authority}${ex.view.path.split('?')[0]}`,
      startNs: BigInt(Date.now()) * 1_000_000n - (endNs - ex.startNs),
      endNs: BigInt(Date.now()) * 1_000_000n,
      attributes: {
        'http.request.method': ex.view.method,
        'url.path': ex.view.path,
        'http.response.status_code': ex.status,
        'server.address': ex.view.authority,
        'upstream_cluster': ex.cluster,
        'response_flags': labels.response_flags,
      },
      error: ex.status >= 500 || ex.status === 0,
    });
  }
}

function stripPort(authority: string): string {
  const i = authority.lastIndexOf(':');
  return i > 0 && !authority.endsWith(']') && /^\d+$/.test(authority.slice(i + 1)) ? authority.slice(0, i) : authority;
}

function shadowHost(authority: string): string {
  const host = stripPort(authority);
  return `${host}-shadow${authority.slice(host.length)}`;
}
