// A certificate's URI subject alternative names, read through @peculiar/x509's typed GeneralNames
// (not parsed out of node:crypto's display string, whose quoting rules are its own). Parsing a
// certificate in JavaScript is slow (~1 ms), so callers on a connection path remember the result
// per certificate (verify.ts keys it by the certificate's SHA-256 fingerprint).
import { x509 } from './x509';

/** Every URI SAN of a DER-encoded certificate, in order; [] when it has no SAN extension. */
export function uriSans(der: ArrayBuffer | Uint8Array): string[] {
  const cert = new x509.X509Certificate(der instanceof Uint8Array ? copyOf(der) : der);
  const ext = cert.getExtension(x509.SubjectAlternativeNameExtension);
  if (!ext) return [];
  return ext.names.items.filter((n) => n.type === 'url').map((n) => n.value);
}

/** The bytes of a view as an ArrayBuffer of their own (a Buffer may be a slice of a pooled one). */
function copyOf(u: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(u.byteLength);
  new Uint8Array(out).set(u);
  return out;
}
