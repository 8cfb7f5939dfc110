// The control plane's gRPC servers:
//   15012  gRPC over TLS — ADS (delta now; state of the world when provided) and the CA's
//          certificate service. The serving certificate comes from the control plane's own CA.
//   15010  plaintext gRPC — ADS only, for proxyless gRPC clients whose xDS bootstrap accepts only
//          insecure channel credentials. Loopback only unless explicitly opened up.
// Both serve the same resources through one DeltaAdsServer; the certificate service is never on
// the plaintext port (node tokens must not cross the network in the clear).
import type { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { Registry } from 'prom-client';
import { listenerTimeouts, type ListenerTimeouts } from './metrics';
import { DEFAULT_XDS_HANDSHAKE_TIMEOUT_MS } from './limits';
import { createLogger, type Logger } from '../common/log';
import { bearerTokenOf } from './api/token';
import { addCertificateService, servingCredentials, type CertificateServiceOptions } from './ca/service';
import { CallerRefusedError, callerOf, type NodeAuthenticator } from './ca/tokens';
import { waypointPlacementFromSnapshot } from './ca/placement';
import type { NodeBinding, StreamCaller, WaypointPlacement } from './xds/node-binding';
import { certificateCaller, type ClientCertificateTrust } from './xds/certificate-caller';
import { trustBundle } from '../common/identity/verify';
import type { DeltaCall } from './xds/delta-server';
import type { ConfigStore } from './store/store';
import { SharedCache } from './xds/cache';
import { DeltaAdsServer } from './xds/delta-server';
import type { DeltaStateOptions } from './xds/delta-state';
import { xdsMetrics } from './xds/metrics';
import { adsImplementation, adsServiceDefinition, type SotwCall, type SotwHandler } from './xds/service';
import { combineSources, type ResourceSource } from './xds/source';
import { WORKLOAD_API_TYPE_URLS, WorkloadApiPublisher } from './workload/publisher';
import type { TranslateOptions } from './workload/translate';
import { XDS_PLAINTEXT_PORT } from '../common/contracts/ports';

export interface Listen {
  readonly host: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
}

export interface ControlGrpcServerOptions {
  readonly source: ResourceSource;
  /** The TLS listener and its credentials (omit to serve no TLS port). */
  readonly tls?: Listen & { readonly credentials: grpc.ServerCredentials };
  /** The plaintext listener (omit to serve none). */
  readonly plaintext?: Listen & {
    /** Allow a non-loopback address: anyone who can reach it reads the mesh's configuration. */
    readonly allowRemote?: boolean;
  };
  /**
   * Require a node credential (metadata `authorization: Bearer <node token>`) for ADS on the TLS
   * port, delta and state of the world alike; streams without a valid one end with
   * UNAUTHENTICATED, streams whose node claims more than the credential speaks for with
   * PERMISSION_DENIED (xds/node-binding.ts). The plaintext port never checks.
   */
  readonly nodes?: NodeAuthenticator;
  /** Which waypoints a credential may act as (default: none may; pass the store's placement). */
  readonly waypointPlacement?: WaypointPlacement;
  /**
   * With `nodes`: also accept a mesh client certificate as an ADS stream's credential (checked
   * first; xds/certificate-caller.ts). The TLS port then asks clients for a certificate, which
   * stays optional (node proxies and the certificate service's callers send none).
   */
  readonly clientCertificates?: ClientCertificateTrust;
  /** Mount more services on the TLS server (the certificate service). */
  readonly tlsServices?: (server: grpc.Server) => void;
  /** State-of-the-world ADS handler, when one exists. */
  readonly sotw?: SotwHandler;
  readonly delta?: DeltaStateOptions;
  readonly registry?: Registry;
  readonly logger?: Logger;
  /** Override gRPC server options, e.g. `grpc.keepalive_time_ms` (defaults: XDS_SERVER_KEEPALIVE). */
  readonly serverOptions?: grpc.ServerOptions;
  /** Handshake and idle timeouts (defaults: XDS_LISTENER_LIMITS). */
  readonly limits?: Partial<ListenerLimits>;
}

export interface ListenerLimits {
  /** Drop a TLS connection whose handshake has not finished by then (15012). */
  readonly handshakeTimeoutMs: number;
  /** Close a connection with no call in progress for this long (grpc.max_connection_idle_ms). */
  readonly idleTimeoutMs: number;
}

/**
 * 15012 is reachable from every pod: a peer that opens TCP connections and never completes TLS
 * (Node's default handshake timeout is 120 s) or never makes a call must not hold them. Node
 * proxies keep their ADS stream open, so the idle timeout only closes connections left unused.
 */
export const XDS_LISTENER_LIMITS: ListenerLimits = { handshakeTimeoutMs: DEFAULT_XDS_HANDSHAKE_TIMEOUT_MS, idleTimeoutMs: 300_000 };

/**
 * HTTP/2 keepalive towards proxies (docs/xds.md, "Keepalive"): the same values as the clients'
 * (XDS_CLIENT_KEEPALIVE in common/xds/client.ts). grpc-js (1.14) enforces no minimum ping interval
 * (it never answers pings with GOAWAY too_many_pings); `minPingIntervalMs` states what other
 * implementations may assume, and stays below the clients' 30 s.
 */
export const XDS_SERVER_KEEPALIVE = { timeMs: 30_000, timeoutMs: 20_000, minPingIntervalMs: 10_000 } as const;

const SERVER_OPTIONS: grpc.ServerOptions = {
  // Find dead clients (a node proxy on a node that vanished) within about a minute.
  'grpc.keepalive_time_ms': XDS_SERVER_KEEPALIVE.timeMs,
  'grpc.keepalive_timeout_ms': XDS_SERVER_KEEPALIVE.timeoutMs,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': XDS_SERVER_KEEPALIVE.minPingIntervalMs,
  'grpc.max_receive_message_length': 16 * 1024 * 1024,
};

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

function bind(server: grpc.Server, listen: Listen, credentials: grpc.ServerCredentials, what: string): Promise<number> {
  const address = isIP(listen.host) === 6 ? `[${listen.host}]:${listen.port}` : `${listen.host}:${listen.port}`;
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => {
      if (err)
        reject(
          new Error(`cannot listen on ${address} for ${what}: ${err.message}. Is another control plane running, or is the port taken? Choose another port.`),
        );
      else resolve(port);
    });
  });
}

/**
 * grpc-js builds its TLS server from the credentials' constructor options and offers no setting
 * for the handshake timeout: add Node's own `handshakeTimeout` to those options (the test in
 * test/xds/limits.unit.test.ts notices if a grpc-js upgrade stops honouring it).
 */
function withHandshakeTimeout(credentials: grpc.ServerCredentials, ms: number, clientCertificates?: ClientCertificateTrust): grpc.ServerCredentials {
  const options = credentials._getConstructorOptions();
  if (!options) throw new Error('xDS over TLS needs secure server credentials');
  Object.assign(options, { handshakeTimeout: ms });
  // Ask for a client certificate without requiring one (the credentials carry the mesh roots as
  // `ca`, startControlGrpc); authenticated() reads it only when OpenSSL verified it.
  if (clientCertificates) Object.assign(options, { requestCert: true, rejectUnauthorized: false });
  return credentials;
}

/** Counts handshake timeouts on the gRPC server's TLS listeners (grpc-js keeps them private). */
function countHandshakeTimeouts(server: grpc.Server, counter: ListenerTimeouts, log: Logger): void {
  const listeners = (server as unknown as { http2Servers?: unknown }).http2Servers; // grpc-js 1.14 internals, checked below
  if (!(listeners instanceof Map)) {
    log.warn('cannot count TLS handshake timeouts on 15012 (grpc-js internals changed); the timeout still applies');
    return;
  }
  for (const h of listeners.keys() as Iterable<EventEmitter>) {
    h.on('tlsClientError', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') counter.inc({ listener: 'xds-tls', kind: 'handshake' });
    });
  }
}

export class ControlGrpcServer {
  readonly delta: DeltaAdsServer;
  private readonly servers: grpc.Server[] = [];
  private readonly logger: Logger;
  private ports: { tls?: number; plaintext?: number } = {};

  constructor(private readonly options: ControlGrpcServerOptions) {
    this.logger = options.logger ?? createLogger('xds');
    this.delta = new DeltaAdsServer(options.source, {
      ...options.delta,
      logger: this.logger,
      metrics: xdsMetrics(options.registry),
    });
  }

  /** Listen; resolves with the bound ports. */
  async start(): Promise<{ tls?: number; plaintext?: number }> {
    const { tls, plaintext } = this.options;
    const sotw = this.options.sotw;
    const ads = adsImplementation({ delta: this.delta.handle, sotw });
    const nodes = this.options.nodes;
    const tlsAds = nodes
      ? adsImplementation({
          delta: (call) => this.authenticated(nodes, call, this.delta.handle),
          ...(sotw ? { sotw: (call: SotwCall) => this.authenticated(nodes, call, sotw) } : {}),
        })
      : ads;
    if (plaintext && !plaintext.allowRemote && !isLoopback(plaintext.host)) {
      throw new Error(
        `refusing plaintext xDS on ${plaintext.host}: port ${XDS_PLAINTEXT_PORT} is unauthenticated and unencrypted, so it listens on loopback only. ` +
          'Use a loopback address, or enable remote plaintext xDS explicitly (--xds-plaintext-remote) if every client network is trusted.',
      );
    }
    try {
      const limits = { ...XDS_LISTENER_LIMITS, ...this.options.limits };
      const limited: grpc.ServerOptions = { ...SERVER_OPTIONS, 'grpc.max_connection_idle_ms': limits.idleTimeoutMs, ...this.options.serverOptions };
      if (tls) {
        const server = new grpc.Server(limited);
        server.addService(adsServiceDefinition, tlsAds);
        this.options.tlsServices?.(server);
        this.servers.push(server);
        this.ports.tls = await bind(
          server,
          tls,
          withHandshakeTimeout(tls.credentials, limits.handshakeTimeoutMs, this.options.nodes ? this.options.clientCertificates : undefined),
          'xDS over TLS',
        );
        if (this.options.registry) countHandshakeTimeouts(server, listenerTimeouts(this.options.registry), this.logger);
      }
      if (plaintext) {
        const server = new grpc.Server(limited);
        server.addService(adsServiceDefinition, ads);
        this.servers.push(server);
        this.ports.plaintext = await bind(server, plaintext, grpc.ServerCredentials.createInsecure(), 'plaintext xDS');
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.logger.info({ tlsPort: this.ports.tls, plaintextPort: this.ports.plaintext }, 'xDS gRPC listening');
    return { ...this.ports };
  }

  /**
   * Checks the stream's bearer token before serving it (UNAUTHENTICATED without a valid one,
   * UNAVAILABLE when the check itself fails, e.g. the Kubernetes API is unreachable) and binds
   * the stream to the caller: its first request's node is checked by `serve`'s stream state.
   */
  private authenticated<C extends DeltaCall | SotwCall>(nodes: NodeAuthenticator, call: C, serve: (call: C, binding: NodeBinding) => void): void {
    const refuse = (code: grpc.status, details: string) => {
      this.logger.warn({ peer: call.getPeer(), why: details }, 'xds stream refused');
      call.emit('error', { code, details });
    };
    const waypointPlacement = this.options.waypointPlacement ?? (() => false);
    const trust = this.options.clientCertificates;
    if (trust) {
      // a mesh certificate, when the client sent one, is the credential (a token beside it is not read)
      let byCertificate: StreamCaller | undefined;
      try {
        byCertificate = certificateCaller(call.getAuthContext().sslPeerCertificate, trust);
      } catch (err) {
        refuse(grpc.status.UNAUTHENTICATED, err instanceof Error ? err.message : String(err));
        return;
      }
      if (byCertificate) {
        serve(call, { caller: byCertificate, waypointPlacement });
        return;
      }
    }
    const header = call.metadata.get('authorization')[0];
    const token = bearerTokenOf(typeof header === 'string' ? header : undefined);
    if (!token) {
      refuse(
        grpc.status.UNAUTHENTICATED,
        "no node credential: send metadata 'authorization: Bearer <node token>' (issue one with 'nodemesh ca issue-node-token --node <name>')",
      );
      return;
    }
    // Requests that arrive meanwhile stay buffered in the stream until the handler reads them.
    callerOf(nodes, token).then(
      (caller) => serve(call, { caller, waypointPlacement }),
      (err: unknown) =>
        err instanceof CallerRefusedError
          ? refuse(grpc.status.UNAUTHENTICATED, `the node credential is not valid: ${err.message}`)
          : refuse(grpc.status.UNAVAILABLE, `cannot check the node credential: ${err instanceof Error ? err.message : String(err)}; retry`),
    );
  }

  /** End open streams (clients see UNAVAILABLE and reconnect) and stop listening. */
  async stop(graceMs = 2000): Promise<void> {
    this.delta.closeAll();
    const servers = this.servers.splice(0);
    await Promise.all(
      servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => {
              server.forceShutdown();
              resolve();
            }, graceMs);
            server.tryShutdown(() => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
  }
}

// ---- the assembled control-plane gRPC side ---------------------------------------------------

export interface ControlGrpcOptions {
  readonly store: ConfigStore;
  /** The CA's certificate service; its CA also issues the TLS serving certificate. */
  readonly certificates?: CertificateServiceOptions;
  /** Names and IPs node proxies dial (SANs of the serving certificate). */
  readonly serverNames?: { dnsNames?: readonly string[]; ipAddresses?: readonly string[] };
  readonly tls?: Listen;
  readonly plaintext?: Listen & { readonly allowRemote?: boolean };
  readonly translate?: TranslateOptions;
  /** Require node tokens for ADS on the TLS port (uses the certificate service's node tokens). */
  readonly authenticateNodes?: boolean;
  /** More resource sources (e.g. Envoy types for waypoints), served next to the workload API. */
  readonly extraSources?: readonly ResourceSource[];
  readonly sotw?: SotwHandler;
  readonly registry?: Registry;
  readonly logger?: Logger;
  readonly limits?: Partial<ListenerLimits>;
}

/** The running gRPC side: the workload API cache, its publisher, and the servers. */
export interface ControlGrpc {
  readonly cache: SharedCache;
  readonly publisher: WorkloadApiPublisher;
  readonly server: ControlGrpcServer;
  readonly ports: { tls?: number; plaintext?: number };
  /** PEM roots a client needs to verify the TLS port (the CA's trust bundle). */
  readonly trustBundlePem?: string;
  stop(): Promise<void>;
}

/**
 * Start translating the store into the workload API and serve it (and the certificate service)
 * over gRPC. TLS needs `certificates` (the serving certificate comes from its CA).
 */
export async function startControlGrpc(options: ControlGrpcOptions): Promise<ControlGrpc> {
  const logger = options.logger ?? createLogger('xds');
  if (options.authenticateNodes && !options.certificates) throw new Error('authenticateNodes needs the certificate service (certificates) for its node tokens');
  let tls: ControlGrpcServerOptions['tls'];
  let trustBundlePem: string | undefined;
  let clientCertificates: ClientCertificateTrust | undefined;
  if (options.tls) {
    const certificates = options.certificates;
    if (!certificates) throw new Error('xDS over TLS needs the CA (certificates) for its serving certificate');
    const serving = await certificates.ca.servingCertificate({ ...options.serverNames });
    trustBundlePem = serving.trustBundlePem;
    if (options.authenticateNodes) {
      // a waypoint's mesh certificate is a credential too (xds/certificate-caller.ts): the TLS port
      // verifies client certificates against the mesh roots; the serving chain's intermediates are the CA's
      const chain = serving.certChainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
      clientCertificates = { bundle: trustBundle(certificates.ca.trustDomain, serving.trustBundlePem), intermediates: chain.slice(1) };
      const pair = { private_key: Buffer.from(serving.privateKeyPem), cert_chain: Buffer.from(serving.certChainPem) };
      tls = { ...options.tls, credentials: grpc.ServerCredentials.createSsl(Buffer.from(serving.trustBundlePem), [pair], false) };
    } else tls = { ...options.tls, credentials: servingCredentials(serving) };
  }
  const cache = new SharedCache(WORKLOAD_API_TYPE_URLS);
  const publisher = new WorkloadApiPublisher(options.store, cache, { logger, translate: options.translate });
  const source = options.extraSources?.length ? combineSources([cache, ...options.extraSources]) : cache;
  const server = new ControlGrpcServer({
    source,
    tls,
    plaintext: options.plaintext,
    nodes: options.authenticateNodes ? options.certificates?.nodes : undefined,
    waypointPlacement: waypointPlacementFromSnapshot(() => options.store.snapshot()),
    clientCertificates,
    tlsServices: options.certificates ? (s) => addCertificateService(s, options.certificates!) : undefined,
    sotw: options.sotw,
    registry: options.registry,
    logger,
    limits: options.limits,
  });
  let ports: { tls?: number; plaintext?: number };
  publisher.start();
  try {
    ports = await server.start();
  } catch (err) {
    publisher.stop();
    throw err;
  }
  return {
    cache,
    publisher,
    server,
    ports,
    trustBundlePem,
    stop: async () => {
      publisher.stop();
      await server.stop();
    },
  };
}
