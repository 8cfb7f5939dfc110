// A control plane for waypoint tests: the real delta ADS server (control/xds) over a SharedCache
// holding hand-written Envoy resources, plus HTTP backends on 127.0.0.1 that record what they got.
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ClientHttp2Stream } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { Cluster, Cluster_DiscoveryType, Cluster_LbPolicy } from '../../api/gen/envoy/config/cluster/v3/cluster';
import { ClusterLoadAssignment } from '../../api/gen/envoy/config/endpoint/v3/endpoint';
import { Listener } from '../../api/gen/envoy/config/listener/v3/listener';
import { RouteConfiguration } from '../../api/gen/envoy/config/route/v3/route';
import { HttpConnectionManager } from '../../api/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager';
import { Router } from '../../api/gen/envoy/extensions/filters/http/router/v3/router';
import { RBAC as NetworkRBAC } from '../../api/gen/envoy/extensions/filters/network/rbac/v3/rbac';
import { TcpProxy } from '../../api/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CaClient } from '../../common/identity/ca-client';
import { CertificateManager, type WorkloadCertificate } from '../../common/identity/manager';
import { identity } from '../../common/identity/spiffe';
import { createLogger } from '../../common/log';
import { CertificateAuthority } from '../../control/ca/authority';
import { placementFromSnapshot } from '../../control/ca/placement';
import { addCertificateService, servingCredentials } from '../../control/ca/service';
import { NodeTokens } from '../../control/ca/tokens';
import type { Workload } from '../../control/resources/workload';
import { MemorySnapshot } from '../../control/store/snapshot';
import { SharedCache } from '../../control/xds/cache';
import { DeltaAdsServer } from '../../control/xds/delta-server';
import { xdsMetrics } from '../../control/xds/metrics';
import { xdsResource } from '../../control/xds/resource';
import { adsImplementation, adsServiceDefinition } from '../../control/xds/service';
import { openTestCa } from '../support/control-plane';
import { until } from '../support/until';
import { pack } from '../../waypoint/config/typed';
import { startWaypoint, type RunningWaypoint } from '../../waypoint/run';
import { Waypoint, type WaypointOptions } from '../../waypoint/waypoint';
import { TYPE } from '../../waypoint/xds/resources';

export const quiet = createLogger('waypoint-test', process.env.NODEMESH_LOG_LEVEL ?? 'silent');

/** An HttpConnectionManager named `name` taking routes `routeName` over ADS: `httpFilters`, then the router. */
function rdsConnectionManager(
  name: string,
  routeName: string,
  httpFilters: Array<{ name: string; typedConfig: ReturnType<typeof pack> }>,
): HttpConnectionManager {
  return HttpConnectionManager.fromPartial({
    statPrefix: name,
    routeSpecifier: { $case: 'rds', value: { routeConfigName: routeName, configSource: { configSourceSpecifier: { $case: 'ads', value: {} } } } },
    httpFilters: [
      ...httpFilters.map((f) => ({ name: f.name, configType: { $case: 'typedConfig' as const, value: f.typedConfig } })),
      { name: 'envoy.filters.http.router', configType: { $case: 'typedConfig', value: pack(Router, Router.fromPartial({})) } },
    ],
  });
}

export class ControlPlane {
  readonly cache = new SharedCache([TYPE.cluster, TYPE.endpoint, TYPE.listener, TYPE.route]);
  private server: grpc.Server | undefined;
  private ads: DeltaAdsServer | undefined;
  port = 0;

  /**
   * Plaintext by default; with `mesh`, TLS like the control plane's 15012: the real CA's serving
   * certificate, and the real certificate service next to ADS.
   */
  async start(port = 0, mesh?: MeshCa): Promise<void> {
    this.ads = new DeltaAdsServer(this.cache, { logger: quiet, metrics: xdsMetrics(new Registry()) });
    this.server = new grpc.Server();
    this.server.addService(adsServiceDefinition as unknown as grpc.ServiceDefinition, adsImplementation({ delta: this.ads.handle }));
    let creds = grpc.ServerCredentials.createInsecure();
    if (mesh) {
      addCertificateService(this.server, { ca: mesh.ca, nodes: mesh.tokens, placement: mesh.placement, registry: new Registry(), logger: quiet });
      creds = servingCredentials(await mesh.ca.servingCertificate({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }));
    }
    this.port = await new Promise<number>((resolve, reject) =>
      this.server!.bindAsync(`127.0.0.1:${port}`, creds, (err, p) => (err ? reject(err) : resolve(p))),
    );
  }

  async stop(): Promise<void> {
    this.ads?.closeAll();
    this.server?.forceShutdown();
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The delta ADS streams open to this control plane now. */
  get xdsStreams(): number {
    return this.ads?.clients().length ?? 0;
  }

  listener(name: string, port: number, routeName: string, httpFilters: Array<{ name: string; typedConfig: ReturnType<typeof pack> }> = []): void {
    const hcm = rdsConnectionManager(name, routeName, httpFilters);
    const l = Listener.fromPartial({
      name,
      address: { address: { $case: 'socketAddress', value: { address: '127.0.0.1', portSpecifier: { $case: 'portValue', value: port } } } },
      filterChains: [
        { filters: [{ name: 'envoy.filters.network.http_connection_manager', configType: { $case: 'typedConfig', value: pack(HttpConnectionManager, hcm) } }] },
      ],
    });
    this.cache.update(TYPE.listener, [xdsResource(TYPE.listener, name, Listener.encode(l).finish())]);
  }

  /** A tcp_proxy Listener on 127.0.0.1:port (or an internal one when port is a name) to `cluster`, with network RBAC filters before it. */
  tcpListener(name: string, port: number | undefined, cluster: string, rbac: NetworkRBAC[] = []): void {
    const tcp = TcpProxy.fromPartial({ statPrefix: name, clusterSpecifier: { $case: 'cluster', value: cluster } });
    const l = Listener.fromPartial({
      name,
      ...(port !== undefined
        ? { address: { address: { $case: 'socketAddress', value: { address: '127.0.0.1', portSpecifier: { $case: 'portValue', value: port } } } } }
        : {}),
      filterChains: [
        {
          filters: [
            ...rbac.map((r) => ({ name: 'envoy.filters.network.rbac', configType: { $case: 'typedConfig' as const, value: pack(NetworkRBAC, r) } })),
            { name: 'envoy.filters.network.tcp_proxy', configType: { $case: 'typedConfig', value: pack(TcpProxy, tcp) } },
          ],
        },
      ],
    });
    this.cache.update(TYPE.listener, [xdsResource(TYPE.listener, name, Listener.encode(l).finish())]);
  }

  /** An internal HTTP listener (`inbound-vip|<port>|http|<host>`, served over HBONE only). */
  internalListener(name: string, routeName: string, httpFilters: Array<{ name: string; typedConfig: ReturnType<typeof pack> }> = []): void {
    const hcm = rdsConnectionManager(name, routeName, httpFilters);
    const l = Listener.fromPartial({
      name,
      listenerSpecifier: { $case: 'internalListener', value: {} },
      filterChains: [
        { filters: [{ name: 'envoy.filters.network.http_connection_manager', configType: { $case: 'typedConfig', value: pack(HttpConnectionManager, hcm) } }] },
      ],
    });
    this.cache.update(TYPE.listener, [xdsResource(TYPE.listener, name, Listener.encode(l).finish())]);
  }

  /** Raw resources of any of the four types (e.g. from control/envoy's translation). */
  raw(typeUrl: string, name: string, bytes: Uint8Array): void {
    this.cache.update(typeUrl, [xdsResource(typeUrl, name, bytes)]);
  }

  /**
   * The set-up most waypoint tests start from: cluster `cluster` of `endpoints`, a Listener `name`
   * on 127.0.0.1:port, and its RouteConfiguration `routeName` sending every request to the cluster.
   */
  serveAll(name: string, port: number, cluster: string, endpoints: Array<number | EndpointSpec>, routeName = 'routes'): void {
    this.cluster(cluster, endpoints);
    this.listener(name, port, routeName);
    this.routes(anyHost(routeName, [prefixRoute('/', cluster)]));
  }

  routes(rc: Parameters<typeof RouteConfiguration.fromPartial>[0]): void {
    const r = RouteConfiguration.fromPartial(rc);
    this.cache.update(TYPE.route, [xdsResource(TYPE.route, r.name, RouteConfiguration.encode(r).finish())]);
  }

  /** Raw bytes as a RouteConfiguration (to send something invalid). */
  rawRoutes(name: string, bytes: Uint8Array): void {
    this.cache.update(TYPE.route, [xdsResource(TYPE.route, name, bytes)]);
  }

  /** An EDS cluster; endpoints are 127.0.0.1 ports, or full LbEndpoint descriptions (weights, HBONE metadata). */
  cluster(name: string, ports: Array<number | EndpointSpec>, extra: Parameters<typeof Cluster.fromPartial>[0] = {}): void {
    const c = Cluster.fromPartial({
      name,
      clusterDiscoveryType: { $case: 'type', value: Cluster_DiscoveryType.EDS },
      edsClusterConfig: { serviceName: name, edsConfig: { configSourceSpecifier: { $case: 'ads', value: {} } } },
      lbPolicy: Cluster_LbPolicy.ROUND_ROBIN,
      connectTimeout: { seconds: 1, nanos: 0 },
      ...extra,
    });
    const cla = ClusterLoadAssignment.fromPartial({
      clusterName: name,
      endpoints: [
        {
          lbEndpoints: ports.map((p) => {
            const e: EndpointSpec = typeof p === 'number' ? { port: p } : p;
            return {
              hostIdentifier: {
                $case: 'endpoint' as const,
                value: {
                  address: {
                    address: {
                      $case: 'socketAddress' as const,
                      value: { address: e.address ?? '127.0.0.1', portSpecifier: { $case: 'portValue' as const, value: e.port } },
                    },
                  },
                },
              },
              loadBalancingWeight: e.weight,
              metadata: e.metadata ? { filterMetadata: e.metadata } : undefined,
            };
          }),
        },
      ],
    });
    this.cache.update(TYPE.cluster, [xdsResource(TYPE.cluster, name, Cluster.encode(c).finish())]);
    this.cache.update(TYPE.endpoint, [xdsResource(TYPE.endpoint, name, ClusterLoadAssignment.encode(cla).finish())]);
  }
}

/** A route: requests whose path starts with `p` go to `cluster`, within `timeoutMs` when given (0: no timeout). */
export function prefixRoute(p: string, cluster: string, timeoutMs?: number) {
  return {
    match: { pathSpecifier: { $case: 'prefix' as const, value: p } },
    action: {
      $case: 'route' as const,
      value: {
        clusterSpecifier: { $case: 'cluster' as const, value: cluster },
        ...(timeoutMs !== undefined ? { timeout: { seconds: Math.floor(timeoutMs / 1000), nanos: (timeoutMs % 1000) * 1e6 } } : {}),
      },
    },
  };
}

/** A RouteConfiguration `name` with one virtual host (`vhost`) for every domain, taking `routes` in order. */
export function anyHost(name: string, routes: Array<ReturnType<typeof prefixRoute>>, vhost = 'web') {
  return { name, virtualHosts: [{ name: vhost, domains: ['*'], routes }] };
}

/** An Envoy-shaped connect_terminate listener on 0.0.0.0:port: CONNECT authority -> internal listener cluster. */
export function connectTerminate(targets: Array<[authority: string, cluster: string]>, port = 15008): Listener {
  const hcm = HttpConnectionManager.fromPartial({
    statPrefix: 'connect_terminate',
    upgradeConfigs: [{ upgradeType: 'CONNECT' }],
    http2ProtocolOptions: { allowConnect: true },
    routeSpecifier: {
      $case: 'routeConfig',
      value: {
        name: 'connect_terminate',
        virtualHosts: targets.map(([authority, cluster]) => ({
          name: cluster,
          domains: [authority],
          routes: [
            {
              match: { pathSpecifier: { $case: 'connectMatcher', value: {} } },
              action: {
                $case: 'route',
                value: { clusterSpecifier: { $case: 'cluster', value: cluster }, upgradeConfigs: [{ upgradeType: 'CONNECT', connectConfig: {} }] },
              },
            },
          ],
        })),
      },
    },
    httpFilters: [{ name: 'envoy.filters.http.router', configType: { $case: 'typedConfig', value: pack(Router, Router.fromPartial({})) } }],
  });
  return Listener.fromPartial({
    name: 'connect_terminate',
    address: { address: { $case: 'socketAddress', value: { address: '0.0.0.0', portSpecifier: { $case: 'portValue', value: port } } } },
    filterChains: [
      { filters: [{ name: 'envoy.filters.network.http_connection_manager', configType: { $case: 'typedConfig', value: pack(HttpConnectionManager, hcm) } }] },
    ],
  });
}

/** A STATIC cluster whose one endpoint is the internal listener of the same name. */
export function internalCluster(name: string): Cluster {
  return Cluster.fromPartial({
    name,
    clusterDiscoveryType: { $case: 'type', value: Cluster_DiscoveryType.STATIC },
    loadAssignment: {
      clusterName: name,
      endpoints: [
        {
          lbEndpoints: [
            {
              hostIdentifier: {
                $case: 'endpoint',
                value: {
                  address: { address: { $case: 'envoyInternalAddress', value: { addressNameSpecifier: { $case: 'serverListenerName', value: name } } } },
                },
              },
            },
          ],
        },
      ],
    },
  });
}

/** The real CA (control/ca) in a temp dir, node tokens, and Workloads placed on nodes. */
export class MeshCa {
  readonly workloads: Workload[] = [];
  readonly placement = placementFromSnapshot(() => MemorySnapshot.of(1, this.workloads), 'cluster.local');
  private constructor(
    readonly dir: string,
    readonly ca: CertificateAuthority,
    readonly tokens: NodeTokens,
  ) {}

  static async create(): Promise<MeshCa> {
    const { dir, ca } = await openTestCa('waypoint-ca');
    return new MeshCa(dir, ca, NodeTokens.forDataDir(dir));
  }

  /** Schedule a Workload (namespace/serviceAccount) on `node`, so that node may get its certificate. */
  place(namespace: string, serviceAccount: string, node: string): void {
    this.workloads.push({
      apiVersion: 'nodemesh.io/v1alpha1',
      kind: 'Workload',
      metadata: { name: `${serviceAccount}-${this.workloads.length}`, namespace },
      spec: { serviceAccount, node, addresses: [`10.200.9.${this.workloads.length + 1}`] },
    } as Workload);
  }

  /** A token file for `node` (what --token-file points at). */
  tokenFile(node: string): string {
    const f = join(this.dir, `${node}.token`);
    writeFileSync(f, this.tokens.issue(node), { mode: 0o600 });
    return f;
  }

  /** The mesh root as a file (what --trust-bundle points at). */
  trustBundleFile(): string {
    const f = join(this.dir, 'root.pem');
    writeFileSync(f, this.ca.trustBundlePem.join(''));
    return f;
  }

  /** A workload certificate from the CA through the certificate service, as a node proxy gets it. */
  async workloadCertificate(
    address: string,
    node: string,
    namespace: string,
    serviceAccount: string,
    ttlSeconds = 0,
  ): Promise<{ manager: CertificateManager; client: CaClient; cert: WorkloadCertificate }> {
    this.place(namespace, serviceAccount, node);
    const client = new CaClient({ address, rootPem: this.ca.trustBundlePem.join(''), tokenFile: this.tokenFile(node) });
    const manager = new CertificateManager({ source: client, trustDomain: 'cluster.local', ttlSeconds });
    const cert = await manager.get(identity(namespace, serviceAccount));
    return { manager, client, cert };
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Every port of a test waypoint on 127.0.0.1, chosen by the kernel (Listener ports aside), and no log. */
export const LOOPBACK = { listenAddress: '127.0.0.1', hbonePort: 0, adminPort: 0, metricsPort: 0, readyPort: 0, logger: quiet } as const;

/**
 * A plaintext waypoint ('wp' in default) on 127.0.0.1 taking its config from `control`, started,
 * ready, and serving the listeners on every one of `ports`.
 */
export async function startPlainWaypoint(control: string, ports: number[], extra: Partial<WaypointOptions> = {}): Promise<Waypoint> {
  const wp = new Waypoint({
    name: 'wp',
    namespace: 'default',
    control,
    ...LOOPBACK,
    ...extra,
  });
  await wp.start();
  await wp.ready();
  await until(`the waypoint's listeners on ${ports.join(', ')}`, () => ports.every((p) => wp.listenerAddress(p) !== undefined));
  return wp;
}

/**
 * The waypoint shop/shop-waypoint as `nodemesh waypoint run --token-file --trust-bundle` starts it,
 * on node-wp (placed with the CA first), every port on 127.0.0.1 chosen by the kernel.
 */
export function startMeshWaypoint(mesh: MeshCa, control: string, certTtlSeconds?: number): Promise<RunningWaypoint> {
  mesh.place('shop', 'shop-waypoint', 'node-wp');
  return startWaypoint({
    name: 'shop-waypoint',
    namespace: 'shop',
    control,
    ...LOOPBACK,
    mesh: { tokenFile: mesh.tokenFile('node-wp'), trustBundleFile: mesh.trustBundleFile(), ...(certTtlSeconds !== undefined ? { certTtlSeconds } : {}) },
  });
}

export interface EndpointSpec {
  readonly address?: string;
  readonly port: number;
  readonly weight?: number;
  /** filter_metadata, e.g. { 'envoy.transport_socket_match': { tunnel: 'http' }, nodemesh: { hbone, identity } }. */
  readonly metadata?: Record<string, Record<string, unknown>>;
}

export interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export interface Backend {
  readonly name: string;
  readonly port: number;
  readonly seen: Seen[];
  close(): Promise<void>;
}

/** An HTTP backend; `answer` may respond itself, else it answers 200 "<name>". */
export async function backend(name: string, answer?: (s: Seen, res: ServerResponse) => boolean | void): Promise<Backend> {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const s = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(parts) };
      seen.push(s);
      if (answer && answer(s, res)) return;
      res.writeHead(200, { 'content-type': 'text/plain', 'x-backend': name });
      res.end(name);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    name,
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/** One HTTP/1.1 request over an HBONE stream. */
export function httpOver(stream: ClientHttp2Stream, path: string, host: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const s = stream as unknown as Record<string, unknown>;
  for (const m of ['setKeepAlive', 'setNoDelay', 'setTimeout', 'ref', 'unref']) if (typeof s[m] !== 'function') s[m] = () => stream;
  return new Promise((resolve, reject) => {
    const r = request({ createConnection: () => stream as unknown as Socket, path, headers: { host, connection: 'close' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    r.on('error', reject);
    r.end();
  });
}
