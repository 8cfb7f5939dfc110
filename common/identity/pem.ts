// PEM text <-> DER bytes for certificates and keys, through @peculiar/x509's PemConverter.
import { x509 } from './x509';

/** Wraps DER bytes in a PEM block with the given label ("CERTIFICATE", "PRIVATE KEY", …), ending in a newline. */
export function toPem(label: string, der: ArrayBuffer | Uint8Array): string {
  const bytes = der instanceof Uint8Array ? der : new Uint8Array(der);
  return `${x509.PemConverter.encode(Uint8Array.from(bytes).buffer, label)}\n`;
}

/** Splits PEM text into its certificate blocks (other blocks are ignored), each ending in a newline. */
export function splitPem(pem: string): string[] {
  if (!pem.includes('-----BEGIN')) return [];
  return x509.PemConverter.decodeWithHeaders(pem)
    .filter((b) => b.type === 'CERTIFICATE')
    .map((b) => toPem('CERTIFICATE', b.rawData));
}
