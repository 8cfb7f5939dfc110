// The real control plane pieces tests start on loopback: the CA in a fresh data directory, and
// the gRPC side (translation + delta ADS) on a plaintext port or, with the certificate service, on
// a TLS port whose serving certificate comes from that CA. Nothing is faked.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { Logger } from '../../common/log';
import { CertificateAuthority } from '../../control/ca/authority';
import { placementFromSnapshot } from '../../control/ca/placement';
import { NodeTokens } from '../../control/ca/tokens';
import { startControlGrpc, type ControlGrpc, type ControlGrpcOptions } from '../../control/grpc';
import type { MemoryStore } from '../../control/store/base-store';

export const silentLogger: Logger = pino({ level: 'silent' });

export interface TestCa {
  readonly ca: CertificateAuthority;
  /** Its data directory (root key and certificate, node tokens). */
  readonly dir: string;
  /** Remove the data directory. */
  remove(): void;
}

/** Open (create) a CA with a new root in a fresh `nm-<name>-` directory under the temp dir. */
export async function openTestCa(name: string, trustDomain = 'cluster.local'): Promise<TestCa> {
  const dir = mkdtempSync(join(tmpdir(), `nm-${name}-`));
  try {
    const ca = await CertificateAuthority.open({ trustDomain, dataDir: dir });
    return { ca, dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

export interface ServeOptions {
  readonly registry?: Registry;
  readonly logger?: Logger;
}

/** The workload API over delta ADS on 127.0.0.1 (plaintext, the 15010-style port; 0: any port). */
export function servePlaintext(store: MemoryStore, options: ServeOptions & { readonly port?: number } = {}): Promise<ControlGrpc> {
  return startControlGrpc({
    store,
    plaintext: { host: '127.0.0.1', port: options.port ?? 0 },
    registry: options.registry ?? new Registry(),
    logger: options.logger ?? silentLogger,
  });
}

/**
 * ADS and the certificate service on 127.0.0.1 over TLS (the 15012-style port), serving
 * certificate from `testCa` (also for `localhost` when serverNames say so); node tokens are the
 * CA directory's.
 */
export function serveTls(
  store: MemoryStore,
  testCa: TestCa,
  options: ServeOptions & { readonly serverNames?: ControlGrpcOptions['serverNames'] } = {},
): Promise<ControlGrpc> {
  const logger = options.logger ?? silentLogger;
  return startControlGrpc({
    store,
    tls: { host: '127.0.0.1', port: 0 },
    ...(options.serverNames ? { serverNames: options.serverNames } : {}),
    certificates: {
      ca: testCa.ca,
      nodes: NodeTokens.forDataDir(testCa.dir),
      placement: placementFromSnapshot(() => store.snapshot(), testCa.ca.trustDomain),
      registry: new Registry(),
      logger,
    },
    registry: options.registry ?? new Registry(),
    logger,
  });
}
