// PEM text <-> DER bytes for certificates and keys.

/** Wraps DER bytes in a PEM block with the given label ("CERTIFICATE", "PRIVATE KEY", …). */
export function toPem(label: string, der: ArrayBuffer | Uint8Array): string {
  const b64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der)).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

/** Splits PEM text into its certificate blocks (other blocks are ignored), each ending in a newline. */
export function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((b) => b + '\n') ?? [];
}
