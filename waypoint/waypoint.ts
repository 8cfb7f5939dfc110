// The waypoint process: xDS in (AdsClient -> compiled ConfigState), HTTP listeners on the ports
// the Listeners name, the HBONE server (CONNECT to VIP:port is served by that port's listener),
// and admin (15000 config dump), metrics (15020) and readiness (15021).
import { RECENT_RECORDS_PATH, RecentRecords } from '../common/recent-records';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createH2Server, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { HboneServer, allow, deny } from '../common/hbone/server';
import { listenerTimeouts, type ListenerTimeouts } from '../common/listener-timeouts';
import { createLogger, type Logger } from '../common/log';
import { bearerMetadata } from '../common/control-client/credential';
import { DeltaXdsClient, type XdsCredentials } from '../common/xds/client';
import type { ResourceChange } from '../common/xds/types';
import type { CompiledCluster, UpstreamEndpoint } from './config/clusters';
import type { CompiledListener } from './config/listeners';
import type { RouteTable } from './config/routes';
import { serveHttp1 } from './http1/server';
import { admitStream, H2Request, H2Response } from './http2/server';
import { SessionIdle } from './http2/session-idle';
import { duplexPair } from './proxy/duplex-pair';
import { RequestHandler, type ConnectionInfo } from './proxy/handler';
import { ConfigState } from './proxy/state';
import { Warming, type WarmingOptions } from './proxy/warming';
import { TcpProxy } from './proxy/tcp';
import { UPSTREAM_WINDOWS, UpstreamTransport, type MeshCredentials } from './proxy/upstream';
import { maxSessionMemoryMiB } from '../common/hbone/settings';
import { WaypointMetrics } from './telemetry/metrics';
import { OtlpExporter } from './telemetry/otlp';
import { ClusterType, EndpointType, ListenerType, RouteType, SHORT, WAYPOINT_TYPES, type Compiled } from './xds/resources';
import { ADMIN_PORT, HBONE_PORT, METRICS_PORT, READY_PORT } from '../common/contracts/ports';

export interface WaypointOptions {
  readonly name: string;
  readonly namespace: string;
  /** Control plane xDS address host:port. */
  readonly control: string;
  /** How to reach the control plane (default plaintext, e.g. the loopback port 15010). */
  readonly controlCredentials?: XdsCredentials;
  /** A bearer token for each xDS stream (the node token, when the control plane asks for one). */
  readonly controlToken?: () => string;
  /** The waypoint's own IP, for its xDS node id (informational). */
  readonly ip?: string;
  /** DNS suffix of Service hosts (default cluster.local), for the xDS node id. */
  readonly domainSuffix?: string;
  /** Address the HTTP listeners bind (default 0.0.0.0). */
  readonly listenAddress?: string;
  /** HBONE port when there are credentials (default 15008; 0 picks one). Without credentials: no HBONE. */
  readonly hbonePort?: number;
  /** 15008's TLS handshake and idle (no open stream) timeouts (HboneServer's defaults: 10 s, 90 s). */
  readonly hboneTimeouts?: { readonly handshakeMs?: number; readonly idleMs?: number };
  readonly adminPort?: number;
  readonly metricsPort?: number;
  readonly readyPort?: number;
  /** Bind admin/metrics/ready here (default 127.0.0.1 for admin, 0.0.0.0 for the others). */
  readonly adminAddress?: string;
  readonly credentials?: MeshCredentials;
  readonly otlpEndpoint?: string;
  readonly logger?: Logger;
  readonly bufferLimit?: number;
  /**
   * How long a request waits for its listener's routes (and, after a start, a CONNECT or request
   * for the first complete xDS state) before a 503 (default 15 s, Envoy's initial_fetch_timeout),
   * and how many may wait at once (default 1024).
   */
  readonly routeWarming?: WarmingOptions;
  /**
   * Plain-TCP and HBONE-tunnelled HTTP connections: `idleMs` (default 60 s) bounds a connection
   * that sends nothing at all, an HTTP/1.1 connection with nothing received between requests or
   * during one, and an HTTP/2 session with no open stream; `headersMs` (default 60 s) an HTTP/1.1
   * request head from its first byte. Closed connections are counted in
   * nodemesh_listener_timeouts_total{listener="http",kind="idle"|"request"}.
   */
  readonly downstreamTimeouts?: { readonly idleMs?: number; readonly headersMs?: number };
  /** Which auxiliary ports this process serves (default all); a --workers primary serves metrics and readiness itself. */
  readonly serve?: { readonly admin?: boolean; readonly metrics?: boolean; readonly ready?: boolean };
}

/** Downstream timeouts: 60 s unless set; a setting must be 1 ms to 1 h (else a RangeError naming it). */
function timeoutSetting(name: string, v: number | undefined): number {
  if (v === undefined) return 60_000;
  if (!Number.isInteger(v) || v < 1 || v > 3_600_000)
    throw new RangeError(`${name} must be a whole number of milliseconds from 1 to 3600000, got ${String(v)}`);
  return v;
}

/**
 * The waypoint's xDS node: the control plane picks the waypoint's view from this id (or
 * NODEMESH_WAYPOINT), as for Envoy.
 */
export function waypointNode(o: Pick<WaypointOptions, 'name' | 'namespace' | 'ip' | 'domainSuffix'>): {
  id: string;
  cluster: string;
  metadata: Record<string, string>;
} {
  const suffix = o.domainSuffix ?? 'cluster.local';
  return {
    id: `waypoint~${o.ip ?? '0.0.0.0'}~${o.name}.${o.namespace}~${o.namespace}.svc.${suffix}`,
    cluster: `${o.name}.${o.namespace}`,
    metadata: { NAME: o.name, NAMESPACE: o.namespace, NODE_KIND: 'waypoint', NODEMESH_WAYPOINT: `${o.namespace}/${o.name}` },
  };
}

export class Waypoint {
  readonly state = new ConfigState();
  readonly metrics = new WaypointMetrics();
  /** The most recent requests, served on 15020 at /recent. */
  readonly recent = new RecentRecords('waypoint');
  /** Requests waiting for their listener's routes (proxy/warming.ts). */
  readonly warming: Warming;
  readonly transport: UpstreamTransport;
  readonly xds: DeltaXdsClient;
  /** The last NACKs (newest last), for the config dump. */
  readonly nacks: Array<{ type: string; detail: string; at: string }> = [];
  private readonly handler: RequestHandler;
  private readonly tcp: TcpProxy;
  private readonly log: Logger;
  private readonly servers = new Map<number, NetServer>();
  // Downstream HTTP/2 (h2c, and HTTP/2 inside HBONE) with HBONE's windows, not node:http2's 64 KiB,
  // so a large upload is not paced by window updates (as the upstream sessions, proxy/upstream.ts).
  private readonly h2: Http2Server = createH2Server({
    settings: { maxConcurrentStreams: 1000, initialWindowSize: UPSTREAM_WINDOWS.streamWindow, maxFrameSize: UPSTREAM_WINDOWS.maxFrameSize },
    maxSessionMemory: maxSessionMemoryMiB(UPSTREAM_WINDOWS),
  });
  private readonly conns = new WeakMap<object, ConnectionInfo>();
  private readonly idle = new WeakMap<object, SessionIdle>();
  private readonly idleMs: number;
  private readonly headersMs: number;
  private readonly timeouts: ListenerTimeouts;
  private readonly sockets = new Set<Duplex>();
  private pendingSession: ConnectionInfo | undefined;
  private hbone: HboneServer | undefined;
  private stopRotation: (() => void) | undefined;
  private readonly aux: HttpServer[] = [];
  private readonly otlp: OtlpExporter | undefined;
  readonly ports: { hbone?: number; admin?: number; metrics?: number; ready?: number } = {};

  constructor(private readonly o: WaypointOptions) {
    // First: a bad setting throws (RangeError) before anything is made.
    this.warming = new Warming(o.routeWarming);
    this.idleMs = timeoutSetting('downstreamTimeouts.idleMs', o.downstreamTimeouts?.idleMs);
    this.headersMs = timeoutSetting('downstreamTimeouts.headersMs', o.downstreamTimeouts?.headersMs);
    this.timeouts = listenerTimeouts(this.metrics.registry);
    this.log = o.logger ?? createLogger('waypoint');
    this.transport = new UpstreamTransport(o.credentials, (cluster) => this.metrics.resent.inc({ cluster }));
    this.state.firstConfigPending = true;
    this.otlp = o.otlpEndpoint ? new OtlpExporter(o.otlpEndpoint, `${o.name}.${o.namespace}`, this.log) : undefined;
    this.handler = new RequestHandler({
      state: this.state,
      transport: this.transport,
      metrics: this.metrics,
      accessLog: this.log.child({ log: 'access' }),
      otlp: this.otlp,
      recent: this.recent,
      bufferLimit: o.bufferLimit ?? 1024 * 1024,
      warming: this.warming,
    });
    this.tcp = new TcpProxy(this.state, this.transport, this.metrics, this.log.child({ log: 'access' }));
    this.h2.on('session', (s: ServerHttp2Session) => {
      if (this.pendingSession) this.conns.set(s, this.pendingSession);
      this.idle.set(s, new SessionIdle(s, this.idleMs, () => this.timedOut('idle')));
      s.setLocalWindowSize(UPSTREAM_WINDOWS.connectionWindow);
      s.on('error', () => undefined);
    });
    // The core stream API (http2/server.ts), not the compatibility API's 'request'.
    this.h2.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      const session = stream.session;
      const conn = session ? this.conns.get(session) : undefined;
      if (!conn) return stream.destroy();
      const idle = session ? this.idle.get(session) : undefined;
      idle?.opened();
      if (admitStream(stream, headers)) this.handler.handle(new H2Request(stream, headers), new H2Response(stream, idle), conn);
      else if (idle) stream.once('close', () => idle.closed());
    });
    this.h2.on('sessionError', () => undefined);
    this.xds = new DeltaXdsClient({
      target: o.control,
      credentials: o.controlCredentials ?? { kind: 'plaintext' },
      node: waypointNode(o),
      types: WAYPOINT_TYPES.map((type) => ({ type })),
      backoff: { initialMs: 250, maxMs: 10_000 },
      callMetadata: o.controlToken ? () => bearerMetadata(o.controlToken!()) : undefined,
      logger: this.log.child({ subsystem: 'xds' }),
    });
    this.xds.onResponse((r, outcome) => {
      const type = SHORT[r.typeUrl] ?? r.typeUrl;
      this.metrics.xdsUpdates.inc({ type, outcome: outcome.accepted ? 'ack' : 'nack' });
      if (!outcome.accepted) {
        this.nacks.push({ type, detail: outcome.message ?? '', at: new Date().toISOString() });
        if (this.nacks.length > 20) this.nacks.shift();
      }
    });
    this.xds.onChange((c) => {
      this.apply(c);
      this.warming.release();
    });
    this.xds.onStatus((s) => {
      if (!s.synced || !this.state.firstConfigPending) return;
      this.state.firstConfigPending = false;
      this.warming.release();
    });
    this.state.onListenersChanged(() => void this.syncListeners());
  }

  /** One accepted xDS response: the compiled resources replace the served ones. */
  private apply(change: ResourceChange<unknown>): void {
    const st = this.state;
    const type = SHORT[change.typeUrl] ?? change.typeUrl;
    const set = (name: string, value: Compiled<unknown> | undefined): void => {
      const c = value?.compiled;
      switch (change.typeUrl) {
        case ClusterType.typeUrl:
          return st.setCluster(c as CompiledCluster | undefined, name);
        case EndpointType.typeUrl:
          return st.setEndpoints(name, c as UpstreamEndpoint[] | undefined);
        case ListenerType.typeUrl:
          return st.setListener(c as CompiledListener | undefined, name);
        case RouteType.typeUrl:
          if (c) st.routes.set(name, c as RouteTable);
          else st.routes.delete(name);
          return;
      }
    };
    for (const u of change.updated) {
      const v = u.value as Compiled<unknown>;
      set(u.name, v);
      st.record(type, { name: u.name, version: u.version, resource: v.json }, u.name);
    }
    for (const r of change.removed) {
      set(r.name, undefined);
      st.record(type, undefined, r.name);
    }
  }

  async start(): Promise<void> {
    const o = this.o;
    if (o.credentials) {
      const creds = o.credentials.current();
      if (!creds) throw new Error('the waypoint has no valid workload certificate for its HBONE listener');
      const timeouts = listenerTimeouts(this.metrics.registry);
      this.hbone = new HboneServer({
        credentials: { certChain: creds.certChain, key: creds.key, trustBundle: creds.trustBundle },
        logger: this.log.child({ subsystem: 'hbone' }),
        handshakeTimeoutMs: o.hboneTimeouts?.handshakeMs,
        idleTimeoutMs: o.hboneTimeouts?.idleMs,
        // counted as the node proxy counts its 15008: nodemesh_listener_timeouts_total{listener="hbone"}
        onTimeout: (kind) => timeouts.inc({ listener: 'hbone', kind }),
        handler: async (r) => {
          // A (re)started waypoint holds CONNECTs until its first complete configuration, as it
          // holds requests (bounded by the same time), rather than refusing what it will serve.
          if (this.state.firstConfigPending) await this.xds.whenSynced(this.warming.timeoutMs).catch(() => undefined);
          const l = this.state.listenerForTunnel(r.authority, r.target.port);
          if (!l) return deny(404, `the waypoint serves no listener for ${r.authority}`);
          const conn: ConnectionInfo = {
            port: l.port,
            listener: l.name,
            principal: r.peerSpiffeId,
            baggage: r.headers.baggage,
            sourceIp: r.remoteAddress.address,
            destinationIp: r.target.host,
          };
          if (l.config.kind === 'tcp') {
            const cfg = l.config;
            const d = this.tcp.authorize(l.name, cfg, conn);
            if (!d.allowed) return deny(403, `denied by rbac${d.policy ? ` policy ${d.policy}` : ''}`);
            try {
              const up = await this.tcp.connectUpstream(cfg);
              this.metrics.tcpOpened(conn, cfg.cluster, up.identity, up.workload);
              return allow(up.upstream, (res) => {
                up.release();
                this.tcp.finish(l.name, cfg, conn, up.endpoint, res, up.identity, up.workload);
              });
            } catch (err) {
              return deny(503, err instanceof Error ? err.message : String(err));
            }
          }
          const [ours, theirs] = duplexPair();
          this.dispatch(ours, conn);
          return allow(theirs);
        },
      });
      // Renewed certificates (half-life) serve new connections; open ones keep theirs.
      this.stopRotation = o.credentials.onChange?.((c) => {
        this.hbone?.rotate({ certChain: c.certChain, key: c.key, trustBundle: c.trustBundle });
        this.log.info({ spiffeId: c.spiffeId, notAfter: c.notAfter?.toISOString() }, 'HBONE listener uses the renewed certificate');
      });
      this.ports.hbone = (await this.hbone.listen({ host: o.listenAddress ?? '0.0.0.0', port: o.hbonePort ?? HBONE_PORT })).port;
    }
    if (o.serve?.admin !== false)
      this.ports.admin = await this.serveAux(o.adminPort ?? ADMIN_PORT, o.adminAddress ?? '127.0.0.1', (path) => this.adminPage(path));
    if (o.serve?.metrics !== false) {
      this.ports.metrics = await this.serveAux(o.metricsPort ?? METRICS_PORT, o.listenAddress ?? '0.0.0.0', async (path, query) =>
        path === '/metrics' || path === '/stats/prometheus'
          ? { status: 200, type: this.metrics.registry.contentType, body: await this.metrics.registry.metrics() }
          : path === RECENT_RECORDS_PATH
            ? { ...this.recent.respond(query), type: 'application/json' }
            : { status: 404, type: 'text/plain', body: 'not found' },
      );
    }
    if (o.serve?.ready !== false) {
      this.ports.ready = await this.serveAux(o.readyPort ?? READY_PORT, o.listenAddress ?? '0.0.0.0', async (path) =>
        path === '/healthz/ready'
          ? this.xds.status().synced
            ? { status: 200, type: 'text/plain', body: 'ready\n' }
            : { status: 503, type: 'text/plain', body: 'waiting for xDS\n' }
          : { status: 404, type: 'text/plain', body: 'not found' },
      );
    }
    this.xds.start();
  }

  /** Resolves when every xDS type has been received once. */
  ready(timeoutMs = 30_000): Promise<void> {
    return this.xds.whenSynced(timeoutMs);
  }

  /** Hand a connection (TCP or HBONE stream) to HTTP/1.1 (http1/server.ts) or HTTP/2 by its first bytes. */
  private dispatch(socket: Duplex, conn: ConnectionInfo): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    this.conns.set(socket, conn);
    // A connection that sends nothing at all is closed after the idle time (before it is HTTP/1.1 or HTTP/2).
    const silent = setTimeout(() => {
      this.timedOut('idle');
      socket.destroy();
    }, this.idleMs);
    silent.unref();
    socket.once('close', () => clearTimeout(silent));
    const onReadable = (): void => {
      const chunk = socket.read() as Buffer | null;
      if (chunk === null) return;
      clearTimeout(silent);
      socket.off('readable', onReadable);
      socket.unshift(chunk);
      if (chunk.subarray(0, 3).toString('latin1') === 'PRI') {
        this.pendingSession = conn;
        this.h2.emit('connection', socket);
        this.pendingSession = undefined;
      } else {
        serveHttp1(socket, (req, res) => this.handler.handle(req, res, conn), {
          idleTimeoutMs: this.idleMs,
          headersTimeoutMs: this.headersMs,
          onTimeout: (kind) => this.timedOut(kind),
        });
      }
    };
    socket.on('readable', onReadable);
  }

  /** A downstream HTTP connection closed for a timeout: nodemesh_listener_timeouts_total{listener="http"}. */
  private timedOut(kind: 'idle' | 'request'): void {
    this.timeouts.inc({ listener: 'http', kind });
  }

  private async syncListeners(): Promise<void> {
    const want = new Set<number>();
    for (const l of this.state.listeners.values()) if (l.address !== undefined && l.config.kind !== 'connect') want.add(l.port);
    for (const [port, srv] of this.servers) {
      if (!want.has(port)) {
        this.servers.delete(port);
        srv.close();
      }
    }
    for (const port of want) {
      if (this.servers.has(port)) continue;
      const srv = createNetServer({ allowHalfOpen: true, noDelay: true }, (s: Socket) => {
        const conn: ConnectionInfo = { port, principal: undefined, sourceIp: s.remoteAddress ?? '', destinationIp: s.localAddress ?? '' };
        const l = this.state.listenerForPort(port);
        if (l?.config.kind === 'tcp') return this.tcp.serve(s, l.name, l.config, conn);
        this.dispatch(s, conn);
      });
      this.servers.set(port, srv);
      await new Promise<void>((resolve) => {
        srv.once('error', (err: Error) => {
          this.log.error({ port, err: err.message }, 'cannot listen on the port a Listener names; the listener is served over HBONE only');
          this.servers.delete(port);
          resolve();
        });
        srv.listen(port, this.o.listenAddress ?? '0.0.0.0', () => resolve());
      });
    }
  }

  private serveAux(
    port: number,
    host: string,
    page: (path: string, query: URLSearchParams) => Promise<{ status: number; type: string; body: string }>,
  ): Promise<number> {
    const srv = createHttpServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://aux');
      page(url.pathname, url.searchParams).then(
        (p) => {
          res.writeHead(p.status, { 'content-type': p.type });
          res.end(p.body);
        },
        (err: unknown) => {
          res.writeHead(500);
          res.end(String(err));
        },
      );
    });
    this.aux.push(srv);
    return new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, host, () => resolve((srv.address() as AddressInfo).port));
    });
  }

  private async adminPage(path: string): Promise<{ status: number; type: string; body: string }> {
    const json = (v: unknown): { status: number; type: string; body: string } => ({ status: 200, type: 'application/json', body: JSON.stringify(v, null, 2) });
    switch (path) {
      case '/config_dump': {
        const out: Record<string, unknown> = {};
        for (const [type, m] of this.state.dump) out[type] = [...m.values()];
        // The workload certificate (never the private key), as Envoy's SecretsConfigDump shows it.
        const creds = this.o.credentials?.current();
        const secrets = creds
          ? [
              { name: 'default', spiffeId: creds.spiffeId, notAfter: creds.notAfter?.toISOString(), certChain: creds.certChain },
              { name: 'ROOTCA', trustDomain: creds.trustBundle.trustDomain, certChain: creds.trustBundle.pem },
            ]
          : [];
        return json({
          node: { name: this.o.name, namespace: this.o.namespace },
          xds: { ...this.xds.status(), recentNacks: this.nacks },
          resources: out,
          secrets,
        });
      }
      case '/clusters':
        return json(
          [...this.state.clusters.values()].map((c) => ({
            name: c.config.name,
            lb: c.config.lb,
            http2: c.config.http2,
            active: c.active,
            breakers: c.config.breakers,
            endpoints: c.balancer.snapshot(),
          })),
        );
      case '/listeners':
        return json(
          [...this.state.listeners.values()].map((l) => ({
            name: l.name,
            port: l.port,
            kind: l.config.kind,
            routes: l.config.kind === 'http' ? (l.config.rdsName ?? '(inline)') : undefined,
          })),
        );
      case '/stats':
        return { status: 200, type: 'text/plain', body: await this.metrics.registry.metrics() };
      default:
        return { status: 404, type: 'text/plain', body: 'admin: /config_dump /clusters /listeners /stats\n' };
    }
  }

  /** Local address of the TCP listener for a Listener port (tests). */
  listenerAddress(port: number): AddressInfo | undefined {
    return this.servers.get(port)?.address() as AddressInfo | undefined;
  }

  async stop(): Promise<void> {
    this.xds.stop();
    this.stopRotation?.();
    this.warming.close();
    for (const s of this.servers.values()) s.close();
    for (const s of this.sockets) s.destroy();
    for (const a of this.aux) {
      a.closeAllConnections?.();
      a.close();
    }
    await this.hbone?.close(100);
    this.transport.close();
    this.handler.close();
    await this.otlp?.close();
  }
}
