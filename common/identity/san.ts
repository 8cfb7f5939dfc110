// A certificate's URI subject alternative names, read from its DER (der.ts), not parsed out of
// node:crypto's display string, whose quoting rules are its own. Callers on a connection path
// remember the result per certificate (verify.ts keys it by the certificate's SHA-256 fingerprint).
import { DER, derChildren, derOne, oid } from './der';

const SUBJECT_ALT_NAME = oid('2.5.29.17').subarray(2); // the OID's content bytes
const EXTENSIONS = DER.context(3); // tbsCertificate's [3] EXPLICIT Extensions
const URI_NAME = DER.contextPrimitive(6); // GeneralName's [6] IMPLICIT IA5String

/**
 * Every URI SAN of a DER-encoded certificate, in order; [] when it has no SAN extension (the first
 * one counts, as in OpenSSL). Throws when the certificate is not well-formed DER.
 */
export function uriSans(der: ArrayBuffer | Uint8Array): string[] {
  const bytes = der instanceof Uint8Array ? Buffer.from(der.buffer, der.byteOffset, der.byteLength) : Buffer.from(der);
  const cert = derOne(bytes, DER.SEQUENCE, 'the certificate');
  const tbs = derChildren(cert.content)[0];
  if (tbs?.tag !== DER.SEQUENCE) throw new Error('DER: the certificate has no tbsCertificate');
  const exts = derChildren(tbs.content).find((e) => e.tag === EXTENSIONS);
  if (!exts) return [];
  for (const ext of derChildren(derOne(exts.content, DER.SEQUENCE, 'the extensions').content)) {
    const parts = ext.tag === DER.SEQUENCE ? derChildren(ext.content) : [];
    const id = parts[0];
    const value = parts[parts.length - 1];
    if (id?.tag !== DER.OID || !id.content.equals(SUBJECT_ALT_NAME)) continue;
    if (value?.tag !== DER.OCTET_STRING) throw new Error('DER: the subjectAltName extension has no value');
    const names = derOne(value.content, DER.SEQUENCE, 'the subjectAltName value');
    return derChildren(names.content)
      .filter((n) => n.tag === URI_NAME)
      .map((n) => n.content.toString('latin1'));
  }
  return [];
}
