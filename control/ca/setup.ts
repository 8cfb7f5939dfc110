// Everything the control plane needs to serve certificates, from its data dir and store: the CA
// (generated root under <dataDir>/ca, or operator files), node tokens, placement from the store
// snapshot, metrics on the control plane's registry. Pass the result as `certificates` to
// startControlGrpc (control/grpc.ts).
import type { IssuedCertificates } from './issued';
import type { Registry } from 'prom-client';
import type { Logger } from '../../common/log';
import { DEFAULT_TRUST_DOMAIN, assertTrustDomain } from '../../common/identity/spiffe';
import type { Snapshot } from '../store/store';
import { CertificateAuthority } from './authority';
import type { OperatorCaFiles } from './material';
import { placementFromSnapshot } from './placement';
import type { CertificateServiceOptions } from './service';
import { NodeTokens, type NodeAuthenticator } from './tokens';

export interface CertificateServiceSetup {
  readonly dataDir: string;
  /** The store's current snapshot (e.g. () => cp.store.snapshot()). */
  readonly snapshot: () => Snapshot;
  /** Node credentials (default: the node tokens under dataDir). */
  readonly nodes?: NodeAuthenticator;
  readonly trustDomain?: string;
  readonly operator?: OperatorCaFiles;
  readonly defaultTtlSeconds?: number;
  readonly maxTtlSeconds?: number;
  readonly registry?: Registry;
  readonly logger?: Logger;
  /** Where each issuance is noted (ControlPlane.issued). */
  readonly issued?: IssuedCertificates;
}

export async function openCertificateService(setup: CertificateServiceSetup): Promise<CertificateServiceOptions> {
  const trustDomain = assertTrustDomain(setup.trustDomain ?? DEFAULT_TRUST_DOMAIN);
  const ca = await CertificateAuthority.open({
    trustDomain,
    dataDir: setup.dataDir,
    operator: setup.operator,
    defaultTtlSeconds: setup.defaultTtlSeconds,
    maxTtlSeconds: setup.maxTtlSeconds,
  });
  setup.logger?.info({ trustDomain, source: ca.material.source, root: ca.trustBundle.roots.map((r) => r.fingerprint256) }, 'certificate authority ready');
  return {
    ca,
    nodes: setup.nodes ?? NodeTokens.forDataDir(setup.dataDir),
    placement: placementFromSnapshot(setup.snapshot, trustDomain),
    registry: setup.registry,
    logger: setup.logger,
    issued: setup.issued,
  };
}
