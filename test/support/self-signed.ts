// A self-signed ECDSA P-256 certificate with the given subject alternative names, made with
// @peculiar/x509 (the library the CA uses): the reference the node proxy's own SAN reading is
// checked against. Basic constraints and key usage sit around the SAN extension, as in the mesh's
// certificates, so a reader that only looks at the first extension is caught.
import { x509 } from '../../common/identity/x509';

export type SanName = { readonly type: 'url' | 'dns'; readonly value: string };

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** `names` undefined or empty: no SAN extension at all. */
export async function selfSignedWithSans(names: readonly SanName[] | undefined): Promise<x509.X509Certificate> {
  const keys = (await crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as import('node:crypto').webcrypto.CryptoKeyPair;
  return x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=san test',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      ...(names?.length
        ? [
            new x509.SubjectAlternativeNameExtension(
              names.map((n) => ({ ...n })),
              true,
            ),
          ]
        : []),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    ],
  });
}
