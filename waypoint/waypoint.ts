// The waypoint process: xDS in (AdsClient -> compiled ConfigState), HTTP listeners on the ports
// the Listeners name, the HBONE server (CONNECT to VIP:port is served by that port's listener),
// and admin (15000 config dump), metrics (15020) and readiness (15021).
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createH2Server, type Http2Server, type Http2ServerRequest, type ServerHttp2Session } from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ChannelCredentials } from '@grpc/grpc-js';
import { Cluster } from '../api/gen/envoy/config/cluster/v3/cluster';
import { ClusterLoadAssignment } from '../api/gen/envoy/config/endpoint/v3/endpoint';
import { Listener } from '../api/gen/envoy/config/listener/v3/listener';
import { RouteConfiguration } from '../api/gen/envoy/config/route/v3/route';
import { HboneServer, allow, deny } from '../common/hbone/server';
import { createLogger, type Logger } from '../common/log';
import { compileCluster, compileEndpoints } from './config/clusters';
import { within } from './config/errors';
import { compileListener } from './config/listeners';
import { compileRouteConfiguration } from './config/routes';
import { duplexPair } from './proxy/duplex-pair';
import { RequestHandler, type ConnectionInfo } from './proxy/handler';
import { ConfigState } from './proxy/state';
import { UpstreamTransport, type MeshCredentials } from './proxy/upstream';
import { WaypointMetrics } from './telemetry/metrics';
import { OtlpExporter } from './telemetry/otlp';
import { AdsClient, SHORT, TYPE, type TypeHandler } from './xds/ads-client';

export interface WaypointOptions {
  readonly name: string;
  readonly namespace: string;
  /** Control plane xDS address host:port. */
  readonly control: string;
  readonly controlCredentials?: ChannelCredentials;
  /** Address the HTTP listeners bind (default 0.0.0.0). */
  readonly listenAddress?: string;
  /** HBONE port (default 15008; 0 picks one; undefined with no credentials: no HBONE). */
  readonly hbonePort?: number;
  readonly adminPort?: number;
  readonly metricsPort?: number;
  readonly readyPort?: number;
  /** Bind admin/metrics/ready here (default 127.0.0.1 for admin, 0.0.0.0 for the others). */
  readonly adminAddress?: string;
  readonly credentials?: MeshCredentials;
  readonly otlpEndpoint?: string;
  readonly logger?: Logger;
  readonly bufferLimit?: number;
}

interface Decoder<M> {
  decode(b: Uint8Array): M;
  toJSON(m: M): unknown;
}

export class Waypoint {
  readonly state = new ConfigState();
  readonly metrics = new WaypointMetrics();
  readonly transport: UpstreamTransport;
  readonly ads: AdsClient;
  private readonly handler: RequestHandler;
  private readonly log: Logger;
  private readonly servers = new Map<number, NetServer>();
  private readonly h1 = createHttpServer({ keepAliveTimeout: 60_000 });
  private readonly h2: Http2Server = createH2Server({ settings: { maxConcurrentStreams: 1000 } });
  private readonly conns = new WeakMap<object, ConnectionInfo>();
  private readonly sockets = new Set<Duplex>();
  private pendingSession: ConnectionInfo | undefined;
  private hbone: HboneServer | undefined;
  private readonly aux: HttpServer[] = [];
  private readonly otlp: OtlpExporter | undefined;
  readonly ports: { hbone?: number; admin?: number; metrics?: number; ready?: number } = {};

  constructor(private readonly o: WaypointOptions) {
    this.log = o.logger ?? createLogger('waypoint');
    this.transport = new UpstreamTransport(o.credentials);
    this.otlp = o.otlpEndpoint ? new OtlpExporter(o.otlpEndpoint, `${o.name}.${o.namespace}`, this.log) : undefined;
    this.handler = new RequestHandler({
      state: this.state,
      transport: this.transport,
      metrics: this.metrics,
      accessLog: this.log.child({ log: 'access' }),
      otlp: this.otlp,
      bufferLimit: o.bufferLimit ?? 1024 * 1024,
    });
    this.h1.on('request', (req, res) => {
      const conn = this.conns.get(req.socket);
      if (conn) this.handler.handle(req, res, conn);
      else res.destroy();
    });
    this.h1.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      if (!socket.writable) return socket.destroy();
      socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 11\r\nconnection: close\r\n\r\nbad request');
    });
    this.h2.on('session', (s: ServerHttp2Session) => {
      if (this.pendingSession) this.conns.set(s, this.pendingSession);
      s.on('error', () => undefined);
    });
    this.h2.on('request', (req: Http2ServerRequest, res) => {
      const conn = req.stream.session ? this.conns.get(req.stream.session) : undefined;
      if (conn) this.handler.handle(req, res, conn);
      else res.destroy();
    });
    this.h2.on('sessionError', () => undefined);
    this.ads = new AdsClient({
      address: o.control,
      credentials: o.controlCredentials,
      nodeId: `waypoint~${o.name}.${o.namespace}`,
      cluster: `${o.name}.${o.namespace}`,
      metadata: { NAME: o.name, NAMESPACE: o.namespace, NODE_KIND: 'waypoint' },
      handlers: this.typeHandlers(),
      logger: this.log.child({ component: 'xds' }),
      onOutcome: (t, outcome) => this.metrics.xdsUpdates.inc({ type: SHORT[t] ?? t, outcome }),
    });
    this.state.onListenersChanged(() => void this.syncListeners());
  }

  private typeHandlers(): TypeHandler[] {
    const st = this.state;
    const make = <M, C>(typeUrl: string, codec: Decoder<M>, compile: (m: M, name: string) => C, apply: (name: string, c: C | undefined) => void): TypeHandler => ({
      typeUrl,
      prepare: (updated, removed) => {
        const compiled = updated.map((u) => {
          let m: M;
          try {
            m = codec.decode(u.value);
          } catch (err) {
            throw new Error(`${u.name}: does not decode: ${err instanceof Error ? err.message : String(err)}`);
          }
          return { u, m, c: within(u.name, () => compile(m, u.name)) };
        });
        return () => {
          for (const { u, m, c } of compiled) {
            apply(u.name, c);
            st.record(SHORT[typeUrl]!, { name: u.name, version: u.version, resource: codec.toJSON(m) }, u.name);
          }
          for (const name of removed) {
            apply(name, undefined);
            st.record(SHORT[typeUrl]!, undefined, name);
          }
        };
      },
    });
    return [
      make(TYPE.cluster, Cluster, (m) => compileCluster(m), (n, c) => st.setCluster(c, n)),
      make(TYPE.endpoint, ClusterLoadAssignment, (m) => compileEndpoints(m), (n, c) => st.setEndpoints(n, c)),
      make(TYPE.listener, Listener, (m) => compileListener(m), (n, c) => st.setListener(c, n)),
      make(TYPE.route, RouteConfiguration, (m) => compileRouteConfiguration(m), (n, c) => {
        if (c) st.routes.set(n, c);
        else st.routes.delete(n);
      }),
    ];
  }

  async start(): Promise<void> {
    const o = this.o;
    if (o.credentials && o.hbonePort !== undefined) {
      const creds = o.credentials.current();
      if (!creds) throw new Error('the waypoint has no workload certificate for its HBONE listener');
      this.hbone = new HboneServer({
        credentials: { certChain: creds.certChain, key: creds.key, trustBundle: creds.trustBundle },
        logger: this.log.child({ component: 'hbone' }),
        handler: async (r) => {
          const l = this.state.listenerForPort(r.target.port);
          if (!l) return deny(503, `no listener for port ${r.target.port}`);
          const [ours, theirs] = duplexPair();
          this.dispatch(ours, { port: r.target.port, principal: r.peerSpiffeId, sourceIp: r.remoteAddress.address, destinationIp: r.target.host });
          return allow(theirs);
        },
      });
      this.ports.hbone = (await this.hbone.listen({ host: o.listenAddress ?? '0.0.0.0', port: o.hbonePort })).port;
    }
    this.ports.admin = await this.serveAux(o.adminPort ?? 15000, o.adminAddress ?? '127.0.0.1', (path) => this.adminPage(path));
    this.ports.metrics = await this.serveAux(o.metricsPort ?? 15020, o.listenAddress ?? '0.0.0.0', async (path) =>
      path === '/metrics' || path === '/stats/prometheus' ? { status: 200, type: this.metrics.registry.contentType, body: await this.metrics.registry.metrics() } : { status: 404, type: 'text/plain', body: 'not found' },
    );
    this.ports.ready = await this.serveAux(o.readyPort ?? 15021, o.listenAddress ?? '0.0.0.0', async (path) =>
      path === '/healthz/ready' ? (this.ads.isReady() ? { status: 200, type: 'text/plain', body: 'ready\n' } : { status: 503, type: 'text/plain', body: 'waiting for xDS\n' }) : { status: 404, type: 'text/plain', body: 'not found' },
    );
    this.ads.start();
  }

  /** Resolves when every xDS type has been received once. */
  ready(): Promise<void> {
    return this.ads.ready();
  }

  /** Hand a connection (TCP or HBONE stream) to HTTP/1.1 or HTTP/2 by its first bytes. */
  private dispatch(socket: Duplex, conn: ConnectionInfo): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    this.conns.set(socket, conn);
    const onReadable = (): void => {
      const chunk = socket.read() as Buffer | null;
      if (chunk === null) return;
      socket.off('readable', onReadable);
      socket.unshift(chunk);
      if (chunk.subarray(0, 3).toString('latin1') === 'PRI') {
        this.pendingSession = conn;
        this.h2.emit('connection', socket);
        this.pendingSession = undefined;
      } else {
        this.h1.emit('connection', socket);
      }
    };
    socket.on('readable', onReadable);
  }

  private async syncListeners(): Promise<void> {
    const want = new Set<number>();
    for (const l of this.state.listeners.values()) if (l.address !== undefined && l.config.kind === 'http') want.add(l.port);
    for (const [port, srv] of this.servers) {
      if (!want.has(port)) {
        this.servers.delete(port);
        srv.close();
      }
    }
    for (const port of want) {
      if (this.servers.has(port)) continue;
      const srv = createNetServer({ allowHalfOpen: false, noDelay: true }, (s: Socket) =>
        this.dispatch(s, { port, principal: undefined, sourceIp: s.remoteAddress ?? '', destinationIp: s.localAddress ?? '' }),
      );
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

  private serveAux(port: number, host: string, page: (path: string) => Promise<{ status: number; type: string; body: string }>): Promise<number> {
    const srv = createHttpServer((req, res) => {
      page((req.url ?? '/').split('?')[0]!).then(
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
        return json({ node: { name: this.o.name, namespace: this.o.namespace }, xds: { connected: this.ads.connected, ready: this.ads.isReady(), lastError: this.ads.lastError, recentNacks: this.ads.nacks }, resources: out });
      }
      case '/clusters':
        return json([...this.state.clusters.values()].map((c) => ({ name: c.config.name, lb: c.config.lb, http2: c.config.http2, active: c.active, breakers: c.config.breakers, endpoints: c.balancer.snapshot() })));
      case '/listeners':
        return json([...this.state.listeners.values()].map((l) => ({ name: l.name, port: l.port, kind: l.config.kind, routes: l.config.kind === 'http' ? (l.config.rdsName ?? '(inline)') : undefined })));
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
    this.ads.stop();
    for (const s of this.servers.values()) s.close();
    for (const s of this.sockets) s.destroy();
    for (const a of this.aux) {
      a.closeAllConnections?.();
      a.close();
    }
    this.h1.closeAllConnections?.();
    await this.hbone?.close(100);
    this.transport.close();
    await this.otlp?.close();
  }
}
