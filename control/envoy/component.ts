// Envoy xDS as a control-plane component: the publisher (translation of the store into Envoy
// resources, per-client views) and the state-of-the-world ADS server. The xDS component serves
// them on its gRPC ports next to the workload API (pass xdsOptions to createXdsComponent; delta
// ADS for the Envoy types goes through its DeltaAdsServer). Start this component before it.
//
// Settings (environment):
//   NODEMESH_TRUST_DOMAIN     trust domain of RBAC principals        (default cluster.local)
//   NODEMESH_ROOT_NAMESPACE   mesh-wide policy namespace             (default nodemesh-system)
//   NODEMESH_WAYPOINT_CERTS   directory a waypoint Envoy reads cert-chain.pem, key.pem and
//                             root-cert.pem from                     (default /var/run/nodemesh/certs)
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import type { ControlPlane, ControlPlaneComponent } from '../control-plane';
import { xdsMetrics } from '../xds/metrics';
import type { SotwHandler } from '../xds/service';
import { SotwAdsServer } from '../xds/sotw-server';
import type { DeltaClientView } from '../xds/delta-server';
import type { ResourceSource } from '../xds/source';
import { dumpXdsClients, type DumpOptions, type XdsClientDump } from './debug';
import { DEFAULT_ENVOY_OPTIONS, type EnvoyTranslateOptions } from './model';
import { EnvoyPublisher } from './publisher';

export function envoyOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): EnvoyTranslateOptions {
  const dir = env.NODEMESH_WAYPOINT_CERTS;
  return {
    ...DEFAULT_ENVOY_OPTIONS,
    trustDomain: env.NODEMESH_TRUST_DOMAIN || DEFAULT_ENVOY_OPTIONS.trustDomain,
    rootNamespace: env.NODEMESH_ROOT_NAMESPACE || DEFAULT_ENVOY_OPTIONS.rootNamespace,
    certFiles: dir ? { chain: join(dir, 'cert-chain.pem'), key: join(dir, 'key.pem'), roots: join(dir, 'root-cert.pem') } : DEFAULT_ENVOY_OPTIONS.certFiles,
  };
}

export class EnvoyXdsComponent implements ControlPlaneComponent {
  readonly name = 'envoy-xds';
  private publisherRef: EnvoyPublisher | undefined;
  private sotw: SotwAdsServer | undefined;
  private deltaClients: () => readonly DeltaClientView[] = () => [];
  private readonly source: ResourceSource;

  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {
    // The xDS component is built before anything starts, so it gets a source that forwards to
    // the publisher once this component has started.
    const empty = new Map();
    const self = this;
    this.source = {
      get typeUrls() {
        return self.publisherRef?.typeUrls ?? EnvoyPublisher.TYPE_URLS;
      },
      resources: (typeUrl, client) => this.publisherRef?.resources(typeUrl, client) ?? (EnvoyPublisher.TYPE_URLS.includes(typeUrl) ? empty : undefined),
      systemVersion: (typeUrl) => this.publisherRef?.systemVersion(typeUrl) ?? '',
      onChange: (listener) => {
        let off: (() => void) | undefined = this.publisherRef?.onChange(listener);
        if (!off) this.pendingListeners.add(listener);
        return () => {
          this.pendingListeners.delete(listener);
          off?.();
          off = undefined;
        };
      },
    };
  }
  private readonly pendingListeners = new Set<Parameters<ResourceSource['onChange']>[0]>();

  /** Options for createXdsComponent: serve the Envoy types, and SotW ADS. */
  get xdsOptions(): { extraSources: readonly ResourceSource[]; sotw: SotwHandler } {
    return {
      extraSources: [this.source],
      sotw: (call, binding) => {
        if (this.sotw) this.sotw.handle(call, binding);
        else call.emit('error', { code: status.UNAVAILABLE, details: 'the Envoy xDS server is not started yet; retry' });
      },
    };
  }

  /** Where /debug/xds finds the delta streams (the xDS component's DeltaAdsServer). */
  setDeltaClients(list: () => readonly DeltaClientView[]): void {
    this.deltaClients = list;
  }

  get publisher(): EnvoyPublisher | undefined {
    return this.publisherRef;
  }

  async start(cp: ControlPlane): Promise<void> {
    const logger = cp.log.child({ component: 'envoy-xds' });
    const publisher = new EnvoyPublisher(cp.store, { logger, translate: envoyOptionsFromEnv(this.env) });
    publisher.start();
    this.publisherRef = publisher;
    for (const l of this.pendingListeners) publisher.onChange(l);
    this.pendingListeners.clear();
    this.sotw = new SotwAdsServer(this.source, { logger, metrics: xdsMetrics(cp.registry) });
  }

  async stop(): Promise<void> {
    this.sotw?.closeAll();
    this.publisherRef?.stop();
  }

  ready(): boolean {
    return this.publisherRef?.lastTranslation !== undefined;
  }

  /** GET /debug/xds?client=ID&resources=1 on the config API. */
  debug(path: string, query: URLSearchParams): unknown {
    if (path !== 'xds') return undefined;
    return { kind: 'XdsClients', clients: this.dump({ client: query.get('client') ?? undefined, resources: query.get('resources') === '1' }) };
  }

  /** What each client was last sent, acknowledged and rejected. */
  dump(opts: DumpOptions = {}): XdsClientDump[] {
    return dumpXdsClients(this.sotw?.clients() ?? [], this.deltaClients(), opts);
  }
}

export function createEnvoyXdsComponent(env: NodeJS.ProcessEnv = process.env): EnvoyXdsComponent {
  return new EnvoyXdsComponent(env);
}

/**
 * The xDS component serving the Envoy types (SotW and delta) next to the workload API, preceded by
 * this component: the one line control/components.ts needs.
 */
export async function envoyAndXdsComponents(env: NodeJS.ProcessEnv = process.env): Promise<ControlPlaneComponent[]> {
  const envoy = createEnvoyXdsComponent(env);
  const xds = (await import('../xds/component.js')).createXdsComponent({ env, ...envoy.xdsOptions });
  envoy.setDeltaClients(() => xds.grpc?.server.delta.clients() ?? []);
  return [envoy, xds];
}
