// `nodemesh waypoint run --workers N`: the primary holds the waypoint's one xDS stream to the
// control plane and re-serves what it accepted to its workers over delta ADS on a Unix socket in a
// private directory (0700), so N workers cost the control plane one stream, not N. The primary
// checks every resource as a waypoint would (decode + compile): a response a worker would refuse
// is refused (NACK) by the primary, and the workers keep the last good configuration. Workers see
// the same resources by name; their versions are the relay's (a hash of the bytes).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { DeltaXdsClient, type XdsCredentials } from '../common/xds/client';
import type { ResourceType } from '../common/xds/types';
import type { Logger } from '../common/log';
import { bearerMetadata } from '../common/control-client/credential';
import { SharedCache } from '../control/xds/cache';
import { DeltaAdsServer } from '../control/xds/delta-server';
import { xdsMetrics } from '../control/xds/metrics';
import { xdsResource } from '../control/xds/resource';
import { adsImplementation, adsServiceDefinition } from '../control/xds/service';
import { waypointNode } from './waypoint';
import { WAYPOINT_TYPES } from './xds/resources';

export interface RelayOptions {
  readonly name: string;
  readonly namespace: string;
  readonly ip?: string;
  readonly domainSuffix?: string;
  /** The control plane's xDS address (host:port). */
  readonly control: string;
  readonly controlCredentials?: XdsCredentials;
  readonly controlToken?: () => string;
  readonly logger: Logger;
}

/** A waypoint type kept as its encoded bytes, accepted only when a waypoint would compile it. */
function relayedType(t: (typeof WAYPOINT_TYPES)[number]): ResourceType<Uint8Array> {
  return {
    typeUrl: t.typeUrl,
    decode: (bytes) => bytes.slice(),
    validate: (_name, bytes) => {
      try {
        return (t.decode(bytes) as { readonly error?: string }).error;
      } catch (err) {
        return err instanceof Error ? err.message : String(err);
      }
    },
  };
}

export class XdsRelay {
  readonly client: DeltaXdsClient;
  private readonly cache = new SharedCache(WAYPOINT_TYPES.map((t) => t.typeUrl));
  private readonly ads: DeltaAdsServer;
  private readonly server = new grpc.Server();
  private readonly dir = mkdtempSync(join(tmpdir(), 'nm-waypoint-relay-'));
  /** Where the workers connect (a gRPC unix: target). */
  readonly address = `unix:${join(this.dir, 'xds.sock')}`;

  constructor(o: RelayOptions) {
    this.client = new DeltaXdsClient({
      target: o.control,
      credentials: o.controlCredentials ?? { kind: 'plaintext' },
      node: waypointNode(o),
      types: WAYPOINT_TYPES.map((t) => ({ type: relayedType(t) })),
      backoff: { initialMs: 250, maxMs: 10_000 },
      callMetadata: o.controlToken ? () => bearerMetadata(o.controlToken!()) : undefined,
      logger: o.logger.child({ subsystem: 'xds' }),
    });
    this.client.onChange((c) => {
      this.cache.update(
        c.typeUrl,
        c.updated.map((u) => xdsResource(c.typeUrl, u.name, u.value as Uint8Array)),
        c.removed.map((r) => r.name),
      );
    });
    this.ads = new DeltaAdsServer(this.cache, { logger: o.logger.child({ subsystem: 'xds-relay' }), metrics: xdsMetrics(new Registry()) });
    this.server.addService(adsServiceDefinition as unknown as grpc.ServiceDefinition, adsImplementation({ delta: this.ads.handle }));
  }

  /** Listen for the workers and connect to the control plane. */
  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      this.server.bindAsync(this.address, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    this.client.start();
  }

  /** Every type received once from the control plane. */
  get synced(): boolean {
    return this.client.status().synced;
  }

  /** Resolves once synced (checked every 100 ms; no time limit: readiness says why it waits). */
  whenSynced(): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.synced) resolve();
        else setTimeout(check, 100).unref();
      };
      check();
    });
  }

  /** The workers' streams open now. */
  get workerStreams(): number {
    return this.ads.clients().length;
  }

  async stop(): Promise<void> {
    this.client.stop();
    this.ads.closeAll();
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
