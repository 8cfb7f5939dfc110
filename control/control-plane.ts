// The control plane process: the config store (embedded file store under the data dir), the HTTP
// config API on 15014, and any further components (the xDS and CA gRPC server) that share its
// store, logger and metrics registry. start() brings everything up in order; stop() in reverse.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import { createLogger, type Logger } from '../common/log';
import { apiServingTls, createApiServer, DEFAULT_API_LIMITS, isLoopback, type ApiLimits, type ApiTls } from './api/exposure';
import { ConfigApi } from './api/server';
import { IssuedCertificates } from './ca/issued';
import type { Explainer } from './api/explain';
import type { NodeAuthenticator } from './ca/tokens';
import { loadOrCreateToken, TOKEN_FILE } from './api/token';
import { formatListen, parseListen, type ListenAddress } from './listen';
import { createControlRegistry } from './metrics';
import { FileStore } from './store/file-store';
import type { ConfigStore } from './store/store';
import { CONFIG_API_PORT } from '../common/contracts/ports';

export const DEFAULT_DATA_DIR = '/var/lib/nodemesh';
export const DEFAULT_API_LISTEN = `127.0.0.1:${CONFIG_API_PORT}`;

/** Something that runs inside the control plane process (see components.ts). */
export interface ControlPlaneComponent {
  readonly name: string;
  /** Called after the store and the HTTP API are up; `cp` gives store, dataDir, log, registry. */
  start(cp: ControlPlane): Promise<void>;
  stop(): Promise<void>;
  /** Readiness contribution for /healthz/ready (default: ready once started). */
  ready?(): boolean;
  /** Debug data for GET /debug/<path> on the config API (undefined: not this component's path). */
  debug?(path: string, query: URLSearchParams): unknown;
  /**
   * A path of its own on the config API, answered before the bearer-token check (so the component
   * authenticates it itself, e.g. the /ui page's session cookie); true when it took the request.
   */
  serve?(req: IncomingMessage, res: ServerResponse, url: URL): boolean;
}

export interface ControlPlaneOptions {
  /** Where the store, the API token and the CA keep their files (default /var/lib/nodemesh). */
  dataDir?: string;
  /**
   * Config API listen address (default 127.0.0.1:15014; port 0 picks a free port). Loopback is
   * plain HTTP; any other address is HTTPS with a serving certificate from the mesh CA.
   */
  listen?: string;
  /** Serve plain HTTP on a non-loopback address (anyone on the path reads the bearer token). */
  allowPlaintextRemote?: boolean;
  /** Trust domain of the CA that issues the API's serving certificate (default cluster.local). */
  trustDomain?: string;
  /** Handshake and request timeouts of the config API (defaults: DEFAULT_API_LIMITS). */
  apiLimits?: Partial<ApiLimits>;
  /** Bearer token file (default <dataDir>/token, generated on first start with mode 0600). */
  tokenFile?: string;
  /** Service VIP range for Services without a clusterIP (default 10.96.0.0/16). */
  serviceCIDR?: string;
  logger?: Logger;
  /** Use this store instead of opening the file store under dataDir. */
  store?: ConfigStore;
  /** Who may obtain certificates (default: the node tokens under dataDir). Kubernetes: TokenReview. */
  nodes?: NodeAuthenticator;
  components?: readonly ControlPlaneComponent[];
  /** Answers GET /v1/explain (the CLI's `control` command wires in explain/). */
  explain?: Explainer;
}

export class ControlPlane {
  readonly dataDir: string;
  readonly registry: Registry = createControlRegistry();
  /** The certificates the CA issued lately (the /ui workload page). */
  readonly issued = new IssuedCertificates();
  readonly log: Logger;
  readonly tokenFile: string;
  private storeRef?: ConfigStore;
  private api?: ConfigApi;
  private server?: Server;
  private address?: ListenAddress;
  private tls?: ApiTls;
  private readonly components: ControlPlaneComponent[];
  private readonly started: ControlPlaneComponent[] = [];
  private running = false;

  constructor(private readonly opts: ControlPlaneOptions = {}) {
    this.dataDir = opts.dataDir ?? DEFAULT_DATA_DIR;
    this.tokenFile = opts.tokenFile ?? join(this.dataDir, TOKEN_FILE);
    this.log = opts.logger ?? createLogger('control');
    this.components = [...(opts.components ?? [])];
  }

  /** Adds a component before start(). */
  use(component: ControlPlaneComponent): this {
    if (this.running) throw new Error(`cannot add component ${component.name}: the control plane is already running`);
    this.components.push(component);
    return this;
  }

  /** The node credential check the certificate service uses, when not the data dir's node tokens. */
  get nodeAuthenticator(): NodeAuthenticator | undefined {
    return this.opts.nodes;
  }

  get store(): ConfigStore {
    if (!this.storeRef) throw new Error('the control plane is not started');
    return this.storeRef;
  }

  /** The address the config API listens on (with the real port when 0 was asked for). */
  get apiAddress(): ListenAddress {
    if (!this.address) throw new Error('the control plane is not started');
    return this.address;
  }

  get apiURL(): string {
    const a = this.apiAddress;
    const host = a.host === '0.0.0.0' ? '127.0.0.1' : a.host === '::' ? '::1' : a.host;
    return `${this.apiTls ? 'https' : 'http'}://${formatListen({ host, port: a.port })}`;
  }

  /** The TLS the config API serves (undefined: plain HTTP on loopback); `trustBundlePem` verifies it. */
  get apiTls(): ApiTls | undefined {
    return this.tls;
  }

  /** The started component of this name. */
  component<T extends ControlPlaneComponent>(name: string): T | undefined {
    return this.started.find((c) => c.name === name) as T | undefined;
  }

  /** The started components' debug data at `path` (GET /debug/<path>), or undefined. */
  debug(path: string, query: URLSearchParams): unknown {
    for (const c of this.started) {
      const body = c.debug?.(path, query);
      if (body !== undefined) return body;
    }
    return undefined;
  }

  async start(): Promise<void> {
    if (this.running) return;
    const listen = parseListen(this.opts.listen ?? DEFAULT_API_LISTEN);
    try {
      this.storeRef = this.opts.store ?? (await FileStore.open({ dataDir: this.dataDir, serviceCIDR: this.opts.serviceCIDR, logger: this.log }));
      const { token, created } = loadOrCreateToken(this.tokenFile);
      if (created) this.log.info({ tokenFile: this.tokenFile }, 'generated the config API token');
      this.api = new ConfigApi({
        store: this.storeRef,
        token,
        registry: this.registry,
        log: this.log,
        isReady: () => this.running && this.started.every((c) => c.ready?.() ?? true),
        explain: this.opts.explain,
        debug: (path, query) => this.debug(path, query),
        pages: (req, res, url) => this.started.some((c) => c.serve?.(req, res, url) ?? false),
      });
      if (!isLoopback(listen.host) && !this.opts.allowPlaintextRemote) {
        this.tls = await apiServingTls(this.dataDir, listen.host, this.opts.trustDomain || process.env.NODEMESH_TRUST_DOMAIN || undefined);
      }
      this.server = createApiServer(this.api.handle, this.tls, { ...DEFAULT_API_LIMITS, ...this.opts.apiLimits }, this.registry);
      await new Promise<void>((resolve, reject) => {
        const s = this.server as Server;
        s.once('error', (err: NodeJS.ErrnoException) =>
          reject(
            err.code === 'EADDRINUSE'
              ? new Error(`cannot listen on ${formatListen(listen)}: the address is in use (another control plane?); pick another with --listen`)
              : new Error(`cannot listen on ${formatListen(listen)}: ${err.message}`),
          ),
        );
        s.listen(listen.port, listen.host, () => resolve());
      });
      const bound = this.server.address() as AddressInfo;
      this.address = { host: bound.address, port: bound.port };
      this.log.info({ address: formatListen(this.address), tls: this.tls !== undefined, dataDir: this.dataDir }, 'config API listening');
      for (const c of this.components) {
        await c.start(this);
        this.started.push(c);
        this.log.info({ component: c.name }, 'control plane component started');
      }
      this.running = true;
      this.log.info({ revision: this.storeRef.revision }, 'control plane ready');
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const c of this.started.splice(0).reverse()) {
      try {
        await c.stop();
      } catch (err) {
        this.log.error({ err, component: c.name }, 'control plane component failed to stop cleanly');
      }
    }
    this.api?.closeStreams();
    const server = this.server;
    this.server = undefined;
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
    if (this.storeRef && !this.opts.store) await this.storeRef.close();
    this.storeRef = undefined;
  }
}
