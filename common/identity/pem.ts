// PEM text <-> DER bytes for certificates and keys (RFC 7468: base64 in lines of 64 between
// BEGIN/END lines). Written here rather than loaded with @peculiar/x509 (der.ts says why).

/** Wraps DER bytes in a PEM block with the given label ("CERTIFICATE", "PRIVATE KEY", …), ending in a newline. */
export function toPem(label: string, der: ArrayBuffer | Uint8Array): string {
  const b64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der)).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Splits PEM text into its certificate blocks (other blocks and text between blocks are ignored),
 * each re-encoded with `toPem`. Throws when a CERTIFICATE block's body is not base64.
 */
export function splitPem(pem: string): string[] {
  const out: string[] = [];
  for (const m of pem.matchAll(BLOCK)) {
    if (m[1] !== 'CERTIFICATE') continue;
    const body = (m[2] as string).replace(/\s+/g, '');
    if (body === '' || !BASE64.test(body)) throw new Error('PEM: a CERTIFICATE block whose body is not base64');
    out.push(toPem('CERTIFICATE', Buffer.from(body, 'base64')));
  }
  return out;
}
