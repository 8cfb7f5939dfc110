// The stand-in API server's serving certificate: a self-signed ECDSA P-256 certificate for
// 127.0.0.1 and `localhost`, made once per server (clients trust it through the kubeconfig's
// certificate-authority-data). kubectl sends bearer tokens only over TLS, so the stand-in is HTTPS.
import type { webcrypto } from 'node:crypto';
import { toPem } from '../../../common/identity/pem';
import { serialNumber } from '../../../common/identity/serial';
import { subtle, x509 } from '../../../common/identity/x509';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface ServingCert {
  readonly cert: string;
  readonly key: string;
}

export async function selfSignedServingCert(): Promise<ServingCert> {
  const keys = (await subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: 'CN=nodemesh stand-in kube-apiserver',
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 7 * 24 * 3600_000),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'ip', value: '127.0.0.1' },
        { type: 'dns', value: 'localhost' },
      ]),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: toPem('PRIVATE KEY', await subtle.exportKey('pkcs8', keys.privateKey)) };
}
