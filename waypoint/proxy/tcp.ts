// tcp_proxy listeners (Service ports that are not HTTP): network RBAC on the connection (peer
// SPIFFE ID, source IP, destination port), then one upstream connection to an endpoint of the
// cluster — plain TCP, or an HBONE tunnel for mesh endpoints — spliced byte for byte with
// half-close. Envoy's tcp_proxy makes one connect attempt; a failure closes the downstream.
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../common/log';
import { splice, type SpliceResult } from '../../common/hbone/splice';
import type { TcpListenerConfig } from '../config/listeners';
import { requestView } from '../config/request';
import type { WaypointMetrics } from '../telemetry/metrics';
import type { ConnectionInfo } from './handler';
import type { ConfigState } from './state';
import type { UpstreamTransport } from './upstream';
import type { EndpointWorkload } from '../../common/contracts/telemetry';

export type TcpDecision = { readonly allowed: true } | { readonly allowed: false; readonly policy: string | undefined };

const EMPTY_HEADERS = {};

export class TcpProxy {
  constructor(
    private readonly state: ConfigState,
    private readonly transport: UpstreamTransport,
    private readonly metrics: WaypointMetrics,
    private readonly log: Logger,
  ) {}

  /** Network RBAC: every rbac filter must allow the connection. */
  authorize(listenerName: string, cfg: TcpListenerConfig, conn: ConnectionInfo): TcpDecision {
    if (cfg.rbac.length === 0) return { allowed: true };
    const subject = {
      request: requestView('', '', '', 'tcp', EMPTY_HEADERS),
      principal: conn.principal,
      sourceIp: conn.sourceIp,
      destinationIp: conn.destinationIp,
      destinationPort: conn.port,
    };
    for (const engine of cfg.rbac) {
      const v = engine.evaluate(subject);
      if (!v.allowed) {
        this.metrics.rbacDenied.inc({ listener: listenerName, policy: v.policy ?? '' });
        return { allowed: false, policy: v.policy };
      }
    }
    return { allowed: true };
  }

  /** Connect to an endpoint of the listener's cluster (rejects with a message naming why not). */
  async connectUpstream(
    cfg: TcpListenerConfig,
  ): Promise<{ upstream: Duplex; endpoint: string; identity: string | undefined; workload: EndpointWorkload | undefined; release: () => void }> {
    const rt = this.state.clusters.get(cfg.cluster);
    if (!rt) throw new Error(`cluster ${cfg.cluster} not found`);
    if (rt.active >= rt.config.breakers.maxConnections) throw new Error(`cluster ${cfg.cluster}: max_connections reached`);
    const ep = rt.balancer.pick();
    if (!ep) throw new Error(`cluster ${cfg.cluster} has no healthy endpoint`);
    rt.active++;
    ep.active++;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      rt.active--;
      ep.active--;
    };
    try {
      const e = ep.endpoint;
      const upstream: Duplex = e.hbone
        ? await this.transport.tunnel(e, rt.config.connectTimeoutMs)
        : await plainConnect(e.address, e.port, rt.config.connectTimeoutMs);
      rt.balancer.record(ep, 200);
      return { upstream, endpoint: ep.key, identity: e.hbone?.identity, workload: e.workload, release };
    } catch (err) {
      rt.balancer.record(ep, 'local-failure');
      release();
      throw err;
    }
  }

  /** Serve a plain TCP connection accepted on a tcp_proxy listener's port. */
  serve(socket: Socket, listenerName: string, cfg: TcpListenerConfig, conn: ConnectionInfo): void {
    socket.on('error', () => undefined);
    const d = this.authorize(listenerName, cfg, conn);
    if (!d.allowed) {
      this.log.info({ listener: listenerName, source: conn.sourceIp, principal: conn.principal, policy: d.policy }, 'tcp connection denied by rbac');
      socket.resetAndDestroy();
      return;
    }
    socket.pause();
    this.connectUpstream(cfg).then(
      ({ upstream, endpoint, identity, workload, release }) => {
        this.metrics.tcpOpened(conn, cfg.cluster, identity, workload);
        splice(socket, upstream, (r) => {
          release();
          this.finish(listenerName, cfg, conn, endpoint, r, identity, workload);
        });
        socket.resume();
      },
      (err: Error) => {
        this.log.warn({ listener: listenerName, cluster: cfg.cluster, err: err.message }, 'tcp_proxy: upstream connect failed');
        socket.resetAndDestroy();
      },
    );
  }

  /** Telemetry for a finished spliced connection. */
  finish(
    listenerName: string,
    cfg: TcpListenerConfig,
    conn: ConnectionInfo,
    endpoint: string,
    r: SpliceResult,
    identity?: string,
    workload?: EndpointWorkload,
  ): void {
    this.metrics.tcpClosed(conn, cfg.cluster, r.bytesToUpstream, r.bytesToDownstream, identity, workload);
    this.log.info(
      {
        listener: listenerName,
        cluster: cfg.cluster,
        upstream: endpoint,
        source: conn.sourceIp,
        principal: conn.principal,
        bytesIn: r.bytesToUpstream,
        bytesOut: r.bytesToDownstream,
        durationMs: Math.round(r.durationMs),
        error: r.error?.message,
      },
      'connection',
    );
  }
}

function plainConnect(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host, port, noDelay: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no TCP connection to ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.off('error', onError);
      resolve(s);
    });
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(new Error(`upstream connect error to ${host}:${port}: ${err.message}`));
    };
    s.once('error', onError);
  });
}
