// Certificates for a real Envoy (an Envoy waypoint) from files, reloaded when they rotate: SDS over
// the filesystem. A TLS context that names certificate files inline is read once, when its
// listener or cluster loads; a Secret delivered by SDS — here from a file (`path_config_source`) —
// makes Envoy watch the certificate files' directory for moves and re-read them. The certificate
// agent (`nodemesh waypoint cert-agent`) writes the two SDS files once next to the certificates and
// swaps the certificates by renaming a `..data` symlink in that directory (one move per rotation).
//
// Two secrets, as Istio names them: `default` (the waypoint's chain and key) and `ROOTCA` (the mesh
// root, to verify peers). Each SDS file is a DiscoveryResponse holding one Secret, in proto3 JSON.
import { dirname, join } from 'node:path';
import { ApiVersion } from '../../api/gen/envoy/config/core/v3/config_source';
import { Secret, SdsSecretConfig } from '../../api/gen/envoy/extensions/transport_sockets/tls/v3/secret';
import { DiscoveryResponse } from '../../api/gen/envoy/service/discovery/v3/discovery';
import { pack, typeUrl } from './any';

export interface CertFiles {
  readonly chain: string;
  readonly key: string;
  readonly roots: string;
}

export const CERT_SECRET = 'default';
export const ROOT_SECRET = 'ROOTCA';
/** The SDS files' names, in the certificates' directory. */
export const SDS_CERT_FILE = 'sds-default.json';
export const SDS_ROOT_FILE = 'sds-rootca.json';

const sdsConfig = (name: string, path: string) =>
  SdsSecretConfig.fromPartial({
    name,
    sdsConfig: { configSourceSpecifier: { $case: 'pathConfigSource', value: { path } }, resourceApiVersion: ApiVersion.V3 },
  });

/** Where the SDS files for `certs` live (the certificates' directory). */
export function sdsFilePaths(certs: CertFiles): { readonly cert: string; readonly root: string } {
  return { cert: join(dirname(certs.chain), SDS_CERT_FILE), root: join(dirname(certs.roots), SDS_ROOT_FILE) };
}

/** The CommonTlsContext fields that take the certificate and the root from the SDS files. */
export function sdsTlsFields(certs: CertFiles) {
  const paths = sdsFilePaths(certs);
  return {
    tlsCertificateSdsSecretConfigs: [sdsConfig(CERT_SECRET, paths.cert)],
    validationContextType: { $case: 'validationContextSdsSecretConfig' as const, value: sdsConfig(ROOT_SECRET, paths.root) },
  };
}

/** The two Secrets: the files they reference, and the directory whose moves reload them. */
export function sdsSecrets(certs: CertFiles): { readonly cert: Secret; readonly root: Secret } {
  return {
    cert: Secret.fromPartial({
      name: CERT_SECRET,
      type: {
        $case: 'tlsCertificate',
        value: {
          certificateChain: { specifier: { $case: 'filename', value: certs.chain } },
          privateKey: { specifier: { $case: 'filename', value: certs.key } },
          watchedDirectory: { path: dirname(certs.chain) },
        },
      },
    }),
    root: Secret.fromPartial({
      name: ROOT_SECRET,
      type: {
        $case: 'validationContext',
        value: { trustedCa: { specifier: { $case: 'filename', value: certs.roots } }, watchedDirectory: { path: dirname(certs.roots) } },
      },
    }),
  };
}

/** The SDS files' contents by path: one DiscoveryResponse with one Secret each, proto3 JSON. */
export function sdsFileDocuments(certs: CertFiles): Map<string, string> {
  const paths = sdsFilePaths(certs);
  const secrets = sdsSecrets(certs);
  const doc = (s: Secret) =>
    JSON.stringify(
      DiscoveryResponse.toJSON(DiscoveryResponse.fromPartial({ versionInfo: '1', typeUrl: typeUrl(Secret), resources: [pack(Secret, s)] })),
      null,
      2,
    ) + '\n';
  return new Map([
    [paths.cert, doc(secrets.cert)],
    [paths.root, doc(secrets.root)],
  ]);
}
