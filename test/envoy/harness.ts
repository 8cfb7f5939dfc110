// A control plane's xDS half for tests: a MemoryStore, the Envoy publisher, the SotW and delta ADS
// servers on one plaintext gRPC server on 127.0.0.1 (the 15010-style listener proxyless clients
// use), and real grpc-js backends on loopback addresses.
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { createLogger } from '../../common/log';
import { EnvoyPublisher } from '../../control/envoy/publisher';
import { MemoryStore } from '../../control/store';
import { DeltaAdsServer } from '../../control/xds/delta-server';
import { xdsMetrics, type XdsMetrics } from '../../control/xds/metrics';
import { adsImplementation, adsServiceDefinition } from '../../control/xds/service';
import { SotwAdsServer } from '../../control/xds/sotw-server';
import type { ResourceSource } from '../../control/xds/source';
import { until } from '../support/until';

export interface ControlPlane {
  readonly port: number;
  readonly store: MemoryStore;
  readonly publisher: EnvoyPublisher;
  readonly sotw: SotwAdsServer;
  readonly delta: DeltaAdsServer;
  readonly metrics: XdsMetrics;
  readonly registry: Registry;
  close(): Promise<void>;
}

/** Start the publisher and both ADS variants; `wrap` may put a test source in front of the publisher. */
export async function startControlPlane(wrap: (s: ResourceSource) => ResourceSource = (s) => s): Promise<ControlPlane> {
  const logger = createLogger('test-xds', process.env.NODEMESH_LOG_LEVEL ?? 'warn');
  const store = new MemoryStore();
  const publisher = new EnvoyPublisher(store, { logger });
  publisher.start();
  const registry = new Registry();
  const metrics = xdsMetrics(registry);
  const source = wrap(publisher);
  const sotw = new SotwAdsServer(source, { logger, metrics });
  const delta = new DeltaAdsServer(source, { logger, metrics });
  const server = new grpc.Server();
  // The service definition and handlers the control plane's gRPC servers register (control/grpc.ts).
  server.addService(adsServiceDefinition, adsImplementation({ sotw: sotw.handle, delta: delta.handle }));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port,
    store,
    publisher,
    sotw,
    delta,
    metrics,
    registry,
    close: async () => {
      publisher.stop();
      sotw.closeAll();
      delta.closeAll();
      server.forceShutdown();
      await store.close();
    },
  };
}

export const ECHO_PATH = '/nodemesh.test.Echo/Who';
const raw = (b: Buffer) => b;
const echoService: grpc.ServiceDefinition = {
  Who: {
    path: ECHO_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
};

export interface Backend {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Calls this backend has received. */
  calls: number;
  /** Fail this many upcoming calls with UNAVAILABLE. */
  failNext: number;
  close(): void;
}

/** A grpc-js server on host:0 that answers every call with its name. */
export async function startBackend(name: string, host: string): Promise<Backend> {
  const server = new grpc.Server();
  const backend: Backend = {
    name,
    host,
    port: 0,
    calls: 0,
    failNext: 0,
    close: () => server.forceShutdown(),
  };
  server.addService(echoService, {
    Who: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      backend.calls++;
      if (backend.failNext > 0) {
        backend.failNext--;
        cb({ code: grpc.status.UNAVAILABLE, details: `${name} is failing on purpose` });
        return;
      }
      cb(null, Buffer.from(name));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:0`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  (backend as { port: number }).port = port;
  return backend;
}

/** One unary call; resolves with the answering backend's name or the gRPC error. */
export function who(client: grpc.Client, headers: Record<string, string> = {}, deadlineMs = 5000): Promise<{ name?: string; error?: grpc.ServiceError }> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) md.set(k, v);
  return new Promise((resolve) => {
    client.makeUnaryRequest(ECHO_PATH, raw, raw, Buffer.alloc(0), md, { deadline: Date.now() + deadlineMs }, (err, value) => {
      if (err) resolve({ error: err });
      else resolve({ name: value?.toString() });
    });
  });
}

/** Poll every 50 ms until `check` returns true (or throw after `ms`). */
export function eventually(what: string, check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  return until(what, check, ms, 50);
}
