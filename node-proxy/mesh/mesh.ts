// The node proxy's mesh side in control-plane mode: per enrolled workload a certificate (fetched
// at enrolment, renewed at half-life) and an HBONE listener on 15008 inside its netns — the
// workloads of one identity share one HBONE server and so one TLS context; the outbound
// and plaintext-inbound handlers for its capture listeners; re-checking open connections when
// policy changes; admin views and readiness.
import { TunnelProtocol, type GatewayAddress, type Workload } from '../../api/gen/nodemesh/workload/v1/workload';
import { HboneClient } from '../../common/hbone/client';
import { createServer, type Server } from 'node:net';
import { deny, HboneServer, type HboneServerOptions } from '../../common/hbone/server';
import { nativeHboneActive } from '../../native/hbone';
import { NativeHboneClient } from '../../native/hbone-client';
import { NativeHboneServer } from '../../native/hbone-server';
import { chooseHboneEngine, type HboneEngine } from '../proxy/hbone-engine';
import type { CertificateManager, WorkloadCertificate } from '../../common/identity/manager';
import { formatSpiffeId, type Identity } from '../../common/identity/spiffe';
import type { Logger } from '../../common/log';
import type { DeltaXdsClient } from '../../common/xds/client';
import { listenInNetns } from '../../native/netns';
import { kernelSpliceAvailable } from '../../native/splice';
import type { SameNodeFastPath } from '../../native/sockmap';
import type { EnrolmentHooks } from '../capture/enroller';
import type { CaptureWorkload } from '../capture/workload';
import type { NodeProxyMesh } from '../daemon';
import type { PeerAuthenticationPolicy } from '../policy/peer-authentication';
import { waypointBindings } from '../policy/waypoint';
import type { ConnectionTable } from '../connections/table';
import type { ProxyContext } from '../proxy/context';
import type { CaptureHandlers, CapturedWorkload } from '../proxy/handlers';
import { handleTunnel } from '../proxy/inbound';
import type { NetnsSockets } from '../proxy/netns-sockets';
import type { OriginalDestinations } from '../proxy/original-destination';
import { policyContextFor } from '../proxy/plan';
import { captureHandlers } from '../proxy/proxy';
import { ConnectionTracker } from '../proxy/tracker';
import { reserveTunnelSendBuffer } from '../proxy/tunnel-socket';
import { ipFromBytes } from '../state/ip';
import type { WorkloadState } from '../state/workload-state';
import type { NodeProxyTelemetry } from '../telemetry/metrics';
import type { ControlWorkloadSource } from './control-source';
import { PolicyGuard } from './guard';
import { identityOf, keyOf } from './runtime';
import { HBONE_PORT } from '../../common/contracts/ports';
import { listenerTimeouts, type ListenerTimeouts } from '../../common/listener-timeouts';
import type { PlaintextInboundLimits } from '../proxy/inbound-limits';

export interface MeshOptions {
  readonly node: string;
  readonly trustDomain: string;
  readonly state: WorkloadState;
  readonly source: ControlWorkloadSource;
  readonly certs: CertificateManager;
  readonly telemetry: NodeProxyTelemetry;
  readonly xds: DeltaXdsClient;
  readonly log: Logger;
  readonly peerAuthentications?: () => readonly PeerAuthenticationPolicy[];
  /** Sockets inside workload netns, capture's original destinations, the connection table. */
  readonly sockets: NetnsSockets;
  readonly originals: OriginalDestinations;
  readonly table: ConnectionTable;
  /** Splice admitted same-node connections in the kernel (default: when the addon can). */
  readonly kernelSplice?: boolean;
  /** Admitted same-node bytes go app socket to app socket in the kernel (native/sockmap.ts). */
  readonly sameNodeFastPath?: SameNodeFastPath;
  /** 15006's connect and idle timeouts (default: PLAINTEXT_INBOUND_LIMITS). */
  readonly inboundLimits?: PlaintextInboundLimits;
  /** The HBONE PING timeout of its client and its servers, ms (default DEFAULT_PING_TIMEOUT_MS; NODEMESH_HBONE_PING_TIMEOUT_MS). */
  readonly hbonePingTimeoutMs?: number;
  /**
   * How long one of its HBONE servers' connections may deliver nothing before it is PINGed, ms
   * (default DEFAULT_SERVER_KEEPALIVE_INTERVAL_MS, 0 = off; NODEMESH_HBONE_SERVER_KEEPALIVE_INTERVAL_MS).
   * The PING timeout there is hbonePingTimeoutMs too.
   */
  readonly hboneServerKeepaliveIntervalMs?: number;
  /** How long a new HBONE connection of its client may take, ms (default DEFAULT_CONNECT_TIMEOUT_MS; NODEMESH_HBONE_CONNECT_TIMEOUT_MS). */
  readonly hboneConnectTimeoutMs?: number;
  /** How long a client's TLS handshake with its HBONE servers may take, ms (default DEFAULT_HANDSHAKE_TIMEOUT_MS; NODEMESH_HBONE_HANDSHAKE_TIMEOUT_MS). */
  readonly hboneHandshakeTimeoutMs?: number;
}

interface Served {
  readonly key: string;
  readonly id: Identity;
  readonly spiffeId: string;
  readonly netnsPath: string;
  /** 15008 in the workload's netns; its connections are served by its identity's HBONE server. */
  listener?: Server;
  /** Set while the listener is being opened (the first certificate and an 'issued' event race). */
  opening?: boolean;
  error?: string;
  closed: boolean;
}

/**
 * One HBONE server per identity with a workload enrolled here: its TLS context (60–90 KiB of
 * OpenSSL memory each) presents the identity's certificate to every peer of those workloads, so a
 * peer still sees exactly the SPIFFE ID of the workload it dialled. Each workload's own listener
 * hands its connections over, named by the workload's key.
 */
interface IdentityServer {
  readonly server: HboneServer | NativeHboneServer;
  /** The certificate it presents now. */
  cert: WorkloadCertificate;
}

const credentialsOf = (c: WorkloadCertificate) => ({ certChain: c.certChainPem, key: c.privateKeyPem, trustBundle: c.trustBundle });

/** How long unenrolling a workload lets its open tunnels finish before they are cut. */
const UNENROL_GRACE_MS = 1_000;

export class Mesh implements NodeProxyMesh, EnrolmentHooks {
  private readonly served = new Map<string, Served>();
  /** By SPIFFE ID. */
  private readonly identities = new Map<string, IdentityServer>();
  private readonly ctx: ProxyContext;
  readonly handlers: CaptureHandlers;
  private readonly hbone: HboneClient;
  /** NODEMESH_HBONE_ENGINE (proxy/hbone-engine.ts): which engine carries tunnels, both ways. */
  private readonly engine: HboneEngine;
  private readonly nativeHbone?: NativeHboneClient;
  private readonly guard: PolicyGuard;
  private readonly offs: Array<() => void> = [];
  private readonly warnTunnel = (msg: string, fields: Record<string, unknown>): void => this.o.log.warn(fields, msg);
  /** 15008's handshake and idle timeouts and 15006's (the same series the control plane's listeners count in). */
  private readonly timeouts: ListenerTimeouts;

  constructor(private readonly o: MeshOptions) {
    this.hbone = new HboneClient({
      logger: o.log.child({ component: 'hbone-client' }),
      pingTimeoutMs: o.hbonePingTimeoutMs,
      connectTimeoutMs: o.hboneConnectTimeoutMs,
    });
    const choice = chooseHboneEngine();
    this.engine = choice.engine;
    if (choice.fallback) o.log.warn({ hboneEngine: this.engine }, choice.fallback);
    if (this.engine === 'native') {
      this.nativeHbone = new NativeHboneClient({
        logger: o.log.child({ component: 'hbone-client', engine: 'native' }),
        pingTimeoutMs: o.hbonePingTimeoutMs,
        connectTimeoutMs: o.hboneConnectTimeoutMs,
      });
      o.log.info({ hboneEngine: this.engine }, 'HBONE tunnels run on the native engine, both ways (NODEMESH_HBONE_ENGINE=node chooses the node engine)');
    } else if (!choice.fallback) o.log.info({ hboneEngine: this.engine }, 'HBONE tunnels run on the node engine (NODEMESH_HBONE_ENGINE=node)');
    this.guard = new PolicyGuard(o.telemetry.registry, o.log);
    this.timeouts = listenerTimeouts(o.telemetry.registry);
    const peerAuthentications = o.peerAuthentications ?? (() => []);
    this.ctx = {
      sockets: o.sockets,
      originals: o.originals,
      tracker: new ConnectionTracker({ table: o.table, log: o.log, telemetry: o.telemetry, guard: this.guard }),
      log: o.log,
      kernelSplice: o.kernelSplice ?? kernelSpliceAvailable(),
      sameNodeFastPath: o.sameNodeFastPath,
      inboundLimits: o.inboundLimits,
      listenerTimeouts: this.timeouts,
      mesh: {
        node: o.node,
        trustDomain: o.trustDomain,
        state: o.state,
        source: o.source,
        certs: o.certs,
        hbone: this.hbone,
        nativeHbone: this.nativeHbone,
        peerAuthentications,
        servesLocally: (w: Workload) => this.served.get(keyOf(w))?.listener !== undefined,
      },
    };
    this.handlers = captureHandlers(this.ctx);
  }

  get hooks(): EnrolmentHooks {
    return this;
  }

  async start(): Promise<void> {
    const { state, xds, telemetry, certs } = this.o;
    this.offs.push(state.bindTo(xds));
    this.offs.push(
      state.onChange(() => {
        telemetry.stateStats(state.stats());
        this.guard.recheckSoon((uid, port) => {
          const w = state.workload(uid);
          return w ? policyContextFor(this.ctx.mesh!, w, port) : undefined;
        });
      }),
    );
    this.offs.push(xds.onStatus((s) => telemetry.xdsStatus(s)));
    const onIssued = (cert: WorkloadCertificate): void => this.rotate(cert);
    const onExpired = (e: { spiffeId: string; notAfter: Date }): void => this.expired(e.spiffeId, e.notAfter);
    certs.on('issued', onIssued);
    certs.on('expired', onExpired);
    this.offs.push(
      () => certs.off('issued', onIssued),
      () => certs.off('expired', onExpired),
    );
    // The manager notices expiry when asked: ask every few seconds, so an expired certificate
    // stops being presented even while no connection asks for it.
    const expiryCheck = setInterval(() => {
      for (const e of this.served.values()) if (e.listener) certs.current(e.id);
    }, 5_000);
    expiryCheck.unref();
    this.offs.push(() => clearInterval(expiryCheck));
    xds.start();
    // Enrol only from a complete view, so a partial first push never unenrols anything.
    try {
      await xds.whenSynced(15_000);
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'no complete workload state yet; enrolling as it arrives');
    }
  }

  async stop(): Promise<void> {
    for (const off of this.offs.splice(0)) off();
    this.o.xds.stop();
    await Promise.all([...this.served.keys()].map((k) => this.closing(k)));
    this.nativeHbone?.close(0);
    this.o.certs.close();
  }

  // ---- enrolment hooks ------------------------------------------------------------------

  listening(key: string, _cw: CaptureWorkload, wl: CapturedWorkload): void {
    const w = this.o.source.workload(key);
    if (!w) throw new Error(`workload ${key} is enrolled but not in the workload API`);
    const id = identityOf(w, this.o.trustDomain);
    const entry: Served = { key, id, spiffeId: formatSpiffeId(id), netnsPath: wl.netnsPath, closed: false };
    this.served.set(key, entry);
    // Fetch the certificate now, before any connection needs it; open 15008 once it is there.
    this.o.certs.ready(id).then(
      (cert) => this.openServer(entry, cert),
      (err: unknown) => {
        entry.error = `no certificate for ${entry.spiffeId}: ${(err as Error).message}`;
      },
    );
  }

  /**
   * Unenrols a workload's mesh side: its listener stops accepting, its HBONE connections get a
   * GOAWAY (peers, pooled connections of other nodes included, open no new tunnel on them) and
   * those still open after UNENROL_GRACE_MS are cut — the unenrol never waits for a peer.
   */
  async closing(key: string): Promise<void> {
    const entry = this.served.get(key);
    if (!entry) return;
    entry.closed = true;
    this.served.delete(key);
    entry.listener?.close(); // its connections are the identity server's: ended below, not waited for here
    entry.listener = undefined;
    const shared = this.identities.get(entry.spiffeId);
    const lastOfIdentity = ![...this.served.values()].some((e) => e.spiffeId === entry.spiffeId);
    if (lastOfIdentity) {
      this.identities.delete(entry.spiffeId);
      this.o.certs.forget(entry.id);
      await shared?.server.close(UNENROL_GRACE_MS);
    } else await shared?.server.closeListener(key, UNENROL_GRACE_MS);
  }

  private async openServer(entry: Served, cert: WorkloadCertificate): Promise<void> {
    if (entry.closed || entry.listener || entry.opening) return;
    entry.opening = true;
    try {
      await this.listen(entry, cert);
    } finally {
      entry.opening = false;
    }
  }

  /** The HBONE server of `cert`'s identity, made (presenting `cert`) when it has none yet. */
  private identityServer(cert: WorkloadCertificate): IdentityServer {
    const have = this.identities.get(cert.spiffeId);
    if (have) return have;
    const options: HboneServerOptions = {
      credentials: credentialsOf(cert),
      // the listener is the workload's key (serveConnection below); a connection from nowhere else can reach it
      handler: async (req) => (req.listener ? handleTunnel(this.ctx, req.listener, req) : deny(503, 'the HBONE connection came through no workload listener')),
      onTimeout: (kind) => this.timeouts.inc({ listener: 'hbone', kind }),
      // a client that vanished without FIN or RST: its connection, streams and records go
      keepaliveIntervalMs: this.o.hboneServerKeepaliveIntervalMs,
      pingTimeoutMs: this.o.hbonePingTimeoutMs,
      handshakeTimeoutMs: this.o.hboneHandshakeTimeoutMs,
      logger: this.o.log.child({ component: 'hbone-server', spiffeId: cert.spiffeId }),
    };
    const server = this.engine === 'native' ? new NativeHboneServer({ ...options, pingTimeoutMs: this.o.hbonePingTimeoutMs }) : new HboneServer(options);
    const made = { server, cert };
    this.identities.set(cert.spiffeId, made);
    return made;
  }

  private async listen(entry: Served, cert: WorkloadCertificate): Promise<void> {
    this.identityServer(cert);
    // looked up per connection: an expired certificate's server is dropped and a new one made
    const listener = createServer({ noDelay: true }, (socket) => {
      const shared = this.identities.get(entry.spiffeId);
      if (shared) shared.server.serveConnection(reserveTunnelSendBuffer(socket, this.warnTunnel), entry.key);
      else socket.destroy();
    });
    try {
      let fd: number;
      try {
        fd = listenInNetns(entry.netnsPath, { host: '::', port: HBONE_PORT });
      } catch {
        fd = listenInNetns(entry.netnsPath, { host: '0.0.0.0', port: HBONE_PORT });
      }
      await listenOn(listener, fd);
    } catch (err) {
      entry.error = `cannot open the HBONE listener on ${HBONE_PORT} in ${entry.netnsPath}: ${(err as Error).message}`;
      this.o.log.error({ workload: entry.key, err: (err as Error).message }, 'HBONE listener not opened');
      return;
    }
    listener.on('error', (err) => this.o.log.error({ workload: entry.key, err: err.message }, 'HBONE listener error'));
    if (entry.closed) {
      listener.close();
      return;
    }
    entry.listener = listener;
    entry.error = undefined;
    // A certificate issued while the listener was opening is the one to present.
    const shared = this.identityServer(this.o.certs.current(entry.id) ?? cert);
    const now = this.o.certs.current(entry.id);
    if (now && now !== shared.cert) {
      shared.server.rotate(credentialsOf(now));
      shared.cert = now;
    }
    this.o.log.info({ workload: entry.key, spiffeId: entry.spiffeId, notAfter: shared.cert.notAfter.toISOString() }, 'HBONE listener open');
  }

  /**
   * Renewal kept failing until the certificate expired: stop presenting it. The HBONE listener
   * closes (peers' connects are refused, never answered with an expired certificate) and opens
   * again with the next certificate issued; outbound tunnels fail at certs.get() meanwhile.
   */
  private expired(spiffeId: string, notAfter: Date): void {
    this.o.log.error(
      { spiffeId, notAfter: notAfter.toISOString() },
      'a workload certificate expired and renewal keeps failing; its HBONE listener closes until a new one is issued',
    );
    for (const e of this.served.values()) {
      if (e.spiffeId !== spiffeId || !e.listener) continue;
      e.listener.close();
      e.listener = undefined;
      e.error = `the certificate for ${spiffeId} expired at ${notAfter.toISOString()} and renewal keeps failing`;
    }
    // and its TLS context goes: the next certificate issued makes a new server
    const shared = this.identities.get(spiffeId);
    this.identities.delete(spiffeId);
    void shared?.server.close(0);
  }

  private rotate(cert: WorkloadCertificate): void {
    const shared = this.identities.get(cert.spiffeId);
    if (shared) {
      shared.server.rotate(credentialsOf(cert));
      shared.cert = cert;
    }
    for (const e of this.served.values()) if (e.spiffeId === cert.spiffeId && !e.listener) void this.openServer(e, cert);
    this.o.log.info({ spiffeId: cert.spiffeId, notAfter: cert.notAfter.toISOString() }, 'workload certificate issued');
  }

  // ---- readiness and admin --------------------------------------------------------------

  notReadyReason(): string | undefined {
    const x = this.o.xds.notReadyReason();
    if (x) return `workload state: ${x}`;
    const waiting = [...this.served.values()].filter((e) => !e.listener);
    if (waiting.length) return `waiting for ${waiting.map((e) => `${e.key} (${e.error ?? `certificate for ${e.spiffeId}`})`).join(', ')}`;
    return undefined;
  }

  /** Why one enrolled workload cannot carry mesh traffic yet (no certificate or HBONE listener), or undefined once it can. */
  workloadNotReady(key: string): string | undefined {
    const e = this.served.get(key);
    if (!e) return `${key} is not served by this node proxy`;
    return e.listener ? undefined : (e.error ?? `waiting for the certificate for ${e.spiffeId}`);
  }

  /** The HBONE connections open now, both ways (the idle memory reducer watches them close). */
  tunnelConnections(): number {
    return this.engine === 'native' ? nativeHboneActive().connections : this.hbone.connectionCount();
  }

  stats(): unknown {
    return {
      xds: this.o.xds.status(),
      state: this.o.state.stats(),
      policyWatchedConnections: this.guard.size,
      uncapturable: this.o.source.uncapturable(),
      // one per identity served here, however many of its workloads are enrolled
      hboneServers: this.identities.size,
      // NODEMESH_HBONE_ENGINE (proxy/hbone-engine.ts); with native, what its engine holds now
      hboneEngine: this.engine,
      ...(this.engine === 'native' ? { nativeHbone: nativeHboneActive() } : {}),
    };
  }

  get adminViews(): Record<string, () => unknown> {
    const { state, certs } = this.o;
    const ips = (w: Workload): string[] => w.addresses.map(ipFromBytes);
    return {
      '/certificates': () => {
        const byId = new Map(certs.status().map((s) => [s.spiffeId, s]));
        return [...this.served.values()].map((e) => {
          const s = byId.get(e.spiffeId);
          return {
            workload: e.key,
            spiffeId: e.spiffeId,
            state: s?.state ?? 'pending',
            notAfter: s?.notAfter?.toISOString(),
            renewAt: s?.renewAt?.toISOString(),
            failures: s?.failures ?? 0,
            ...(s?.lastError ? { lastError: s.lastError } : {}),
            hboneListener: e.listener ? `[::]:${HBONE_PORT}` : undefined,
            ...(e.error ? { error: e.error } : {}),
          };
        });
      },
      '/mesh/workloads': () =>
        [...state.allWorkloads().values()].map((w) => ({
          uid: w.uid,
          namespace: w.namespace,
          name: w.name,
          node: w.node,
          addresses: ips(w),
          serviceAccount: w.serviceAccount,
          protocol: w.tunnelProtocol === TunnelProtocol.TUNNEL_PROTOCOL_HBONE ? 'HBONE' : 'TCP',
          services: Object.keys(w.services),
          authorizationPolicies: w.authorizationPolicies,
          waypoint: waypointView(w.waypoint),
          // The waypoints whose identity alone may reach it (its own and its Services').
          boundTo: waypointBindings(state, w, this.o.trustDomain),
        })),
      '/services': () =>
        [...state.allServices().entries()].map(([name, s]) => ({
          name,
          hostname: s.hostname,
          vips: s.addresses.map((a) => ipFromBytes(a.address)),
          waypoint: waypointView(s.waypoint),
          ports: s.ports,
          endpoints: s.ports.flatMap((p) =>
            state.endpoints(s, p.servicePort).map((e) => ({ port: p.servicePort, workload: e.workload.uid, targetPort: e.targetPort })),
          ),
        })),
      '/policies': () => [...state.allAuthorizations().values()],
      '/peer-authentications': () => [...state.allPeerAuthentications().values()],
    };
  }
}

function listenOn(server: Server, fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** A waypoint reference as admin shows it. */
function waypointView(gw: GatewayAddress | undefined): Record<string, unknown> | undefined {
  if (!gw) return undefined;
  const d = gw.destination;
  return {
    gateway: gw.gateway || undefined,
    address: d?.$case === 'address' ? ipFromBytes(d.value.address) : undefined,
    hostname: d?.$case === 'hostname' ? d.value.hostname : undefined,
    hbonePort: gw.hboneMtlsPort || HBONE_PORT,
    unresolvedReason: gw.unresolvedReason || undefined,
  };
}
