// An ephemeral PKI for the tunnel's tests and benchmark: a root CA (ECDSA P-256) per trust
// domain that issues workload certificates with one SPIFFE URI SAN, in memory. Never used by
// the mesh at run time (the control plane's CA issues real workload certificates).
import type { webcrypto } from 'node:crypto';
import { toPem } from '../../identity/pem';
import { serialNumber as newSerial } from '../../identity/serial';
import { formatSpiffeId, identity } from '../../identity/spiffe';
import { trustBundle, type TrustBundle } from '../../identity/verify';
import { subtle, x509 } from '../../identity/x509';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface IssuedCredentials {
  readonly spiffeId: string;
  /** PEM leaf (then intermediates, if any). */
  readonly certChain: string;
  /** PKCS#8 PEM. */
  readonly key: string;
  readonly serialNumber: string;
}

export interface IssueOptions {
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** Put exactly this URI in the SAN instead of the workload's SPIFFE ID. */
  readonly uriOverride?: string;
}

export interface TestCa {
  readonly trustDomain: string;
  readonly bundle: TrustBundle;
  issue(namespace: string, serviceAccount: string, options?: IssueOptions): Promise<IssuedCredentials>;
}

async function keyPair(): Promise<webcrypto.CryptoKeyPair> {
  return (await subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

export async function createTestCa(trustDomain = 'cluster.local'): Promise<TestCa> {
  const rootKeys = await keyPair();
  const now = Date.now();
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: newSerial(),
    name: `O=nodemesh test,CN=${trustDomain} test root`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 24 * 3600_000),
    keys: rootKeys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  const rootPem = root.toString('pem') + '\n';
  return {
    trustDomain,
    bundle: trustBundle(trustDomain, rootPem),
    async issue(namespace, serviceAccount, options = {}) {
      const spiffeId = options.uriOverride ?? formatSpiffeId(identity(namespace, serviceAccount, trustDomain));
      const keys = await keyPair();
      const serialNumber = newSerial();
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber,
        subject: `O=nodemesh test,CN=${serviceAccount}.${namespace}`,
        issuer: root.subject,
        notBefore: options.notBefore ?? new Date(Date.now() - 60_000),
        notAfter: options.notAfter ?? new Date(Date.now() + 3600_000),
        signingKey: rootKeys.privateKey,
        publicKey: keys.publicKey,
        signingAlgorithm: ALG,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
          new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], true),
          await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
        ],
      });
      return {
        spiffeId,
        certChain: leaf.toString('pem') + '\n',
        key: toPem('PRIVATE KEY', await subtle.exportKey('pkcs8', keys.privateKey)),
        serialNumber,
      };
    },
  };
}
