// The xDS + CA gRPC side as a control-plane component (see control/components.ts): opens the CA
// from the data dir, translates the store into the workload API and serves it with the
// certificate service on 15012 (TLS) and ADS on 15010 (plaintext, loopback).
//
// Settings (environment, since `nodemesh control` passes no flags to components):
//   NODEMESH_XDS_LISTEN            TLS listen address           (default :15012, every interface)
//   NODEMESH_XDS_PLAINTEXT_LISTEN  plaintext listen, or "off"   (default 127.0.0.1:15010)
//   NODEMESH_XDS_PLAINTEXT_REMOTE  "1": allow a non-loopback plaintext address
//   NODEMESH_XDS_REQUIRE_NODE_TOKEN ADS on 15012 (delta and SotW) needs `authorization: Bearer
//                                  <node token>`, bound to its node (default); "0" turns it off
//                                  (then anyone who reaches 15012 reads the mesh's configuration)
//   NODEMESH_XDS_HANDSHAKE_TIMEOUT_MS  TLS handshake timeout on 15012 (default 10000)
//   NODEMESH_XDS_IDLE_TIMEOUT_MS   close connections with no call for this long (default 300000)
//   NODEMESH_TRUST_DOMAIN          trust domain                 (default cluster.local)
//   NODEMESH_ROOT_NAMESPACE        mesh-wide policy namespace   (default nodemesh-system)
//   NODEMESH_XDS_DNS_NAMES         more names for the serving certificate, comma-separated
//                                  (on Kubernetes: nodemesh-control.<namespace>.svc, …)
import { hostname, networkInterfaces } from 'node:os';
import { openCertificateService } from '../ca/setup';
import type { ControlPlane, ControlPlaneComponent } from '../control-plane';
import { startControlGrpc, XDS_LISTENER_LIMITS, type ControlGrpc } from '../grpc';
import { parseListen } from '../listen';
import { millisFromEnv } from '../../common/env';
import { XDS_HANDSHAKE_TIMEOUT_ENV } from '../limits';
import { DEFAULT_TRANSLATE_OPTIONS } from '../workload/translate';
import type { SotwHandler } from './service';
import type { ResourceSource } from './source';
import { XDS_PLAINTEXT_PORT, XDS_TLS_PORT } from '../../common/contracts/ports';

export interface XdsComponentOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** More resource sources served next to the workload API (Envoy types for waypoints). */
  readonly extraSources?: readonly ResourceSource[];
  readonly sotw?: SotwHandler;
}

/** Every address of this host: the serving certificate must name what node proxies dial. */
function localAddresses(): string[] {
  const out = new Set<string>(['127.0.0.1', '::1']);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address.split('%')[0]!);
  return [...out];
}

export class XdsComponent implements ControlPlaneComponent {
  readonly name = 'xds';
  private running: ControlGrpc | undefined;

  constructor(private readonly options: XdsComponentOptions = {}) {}

  /** The running servers, cache and publisher (for the admin API and tests). */
  get grpc(): ControlGrpc | undefined {
    return this.running;
  }

  async start(cp: ControlPlane): Promise<void> {
    const env = this.options.env ?? process.env;
    const trustDomain = env.NODEMESH_TRUST_DOMAIN || DEFAULT_TRANSLATE_OPTIONS.trustDomain;
    const logger = cp.log.child({ subsystem: 'xds' });
    const certificates = await openCertificateService({
      dataDir: cp.dataDir,
      snapshot: () => cp.store.snapshot(),
      nodes: cp.nodeAuthenticator,
      trustDomain,
      registry: cp.registry,
      logger: cp.log.child({ subsystem: 'ca' }),
      issued: cp.issued,
    });
    const plaintextText = env.NODEMESH_XDS_PLAINTEXT_LISTEN ?? `127.0.0.1:${XDS_PLAINTEXT_PORT}`;
    this.running = await startControlGrpc({
      store: cp.store,
      certificates,
      serverNames: {
        dnsNames: [
          'localhost',
          hostname(),
          ...(env.NODEMESH_XDS_DNS_NAMES ?? '')
            .split(',')
            .map((n) => n.trim())
            .filter(Boolean),
        ],
        ipAddresses: localAddresses(),
      },
      tls: parseListen(env.NODEMESH_XDS_LISTEN ?? `:${XDS_TLS_PORT}`),
      plaintext: plaintextText === 'off' ? undefined : { ...parseListen(plaintextText), allowRemote: env.NODEMESH_XDS_PLAINTEXT_REMOTE === '1' },
      authenticateNodes: env.NODEMESH_XDS_REQUIRE_NODE_TOKEN !== '0',
      translate: {
        ...DEFAULT_TRANSLATE_OPTIONS,
        trustDomain,
        rootNamespace: env.NODEMESH_ROOT_NAMESPACE || DEFAULT_TRANSLATE_OPTIONS.rootNamespace,
      },
      extraSources: this.options.extraSources,
      sotw: this.options.sotw,
      registry: cp.registry,
      logger,
      limits: {
        handshakeTimeoutMs: millisFromEnv(env, XDS_HANDSHAKE_TIMEOUT_ENV, undefined, 1) ?? XDS_LISTENER_LIMITS.handshakeTimeoutMs,
        idleTimeoutMs: millisFromEnv(env, 'NODEMESH_XDS_IDLE_TIMEOUT_MS', undefined, 1) ?? XDS_LISTENER_LIMITS.idleTimeoutMs,
      },
    });
  }

  async stop(): Promise<void> {
    const running = this.running;
    this.running = undefined;
    await running?.stop();
  }

  ready(): boolean {
    return this.running !== undefined;
  }
}

export function createXdsComponent(options: XdsComponentOptions = {}): XdsComponent {
  return new XdsComponent(options);
}
