// Workload keys and certificate requests: an ECDSA P-256 key pair made where it is used (the node
// proxy), and a PKCS#10 CSR whose only subject alternative name is the workload's SPIFFE URI.
// The private key never leaves the process that made it.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { toPem } from './pem';
import { formatSpiffeId, type Identity } from './spiffe';
import { subtle, x509 } from './x509';

export const WORKLOAD_KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const WORKLOAD_SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface WorkloadKey {
  /** PKCS#8 PEM, for node:tls `key`. */
  readonly privateKeyPem: string;
  readonly privateKey: KeyObject;
}

export interface WorkloadCsr {
  readonly key: WorkloadKey;
  /** PKCS#10 in PEM. */
  readonly csrPem: string;
}

/** Makes a key pair and a CSR for `id` (URI SAN only, empty subject as the SAN carries the name). */
export async function createWorkloadCsr(id: Identity): Promise<WorkloadCsr> {
  const keys = (await subtle.generateKey(WORKLOAD_KEY_ALGORITHM, true, ['sign', 'verify'])) as import('node:crypto').webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: '',
    keys,
    signingAlgorithm: WORKLOAD_SIGNING_ALGORITHM,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: formatSpiffeId(id) }], true)],
  });
  const privateKeyPem = toPem('PRIVATE KEY', await subtle.exportKey('pkcs8', keys.privateKey));
  return {
    key: { privateKeyPem, privateKey: createPrivateKey(privateKeyPem) },
    csrPem: csr.toString('pem') + '\n',
  };
}
