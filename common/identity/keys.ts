// Workload keys and certificate requests: an ECDSA P-256 key pair made where it is used (the node
// proxy), and a PKCS#10 CSR (RFC 2986) whose only subject alternative name is the workload's
// SPIFFE URI, encoded with der.ts and signed with node:crypto. The private key never leaves the
// process that made it.
import { generateKeyPair, sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { DER, oid, tlv } from './der';
import { toPem } from './pem';
import { formatSpiffeId, type Identity } from './spiffe';

const makeKeyPair = promisify(generateKeyPair);

const EXTENSION_REQUEST = oid('1.2.840.113549.1.9.14'); // PKCS#9 extensionRequest
const SUBJECT_ALT_NAME = oid('2.5.29.17');
const ECDSA_WITH_SHA256 = oid('1.2.840.10045.4.3.2');

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

/** Makes a key pair and a CSR for `id` (URI SAN only, marked critical as the subject is empty: RFC 5280 4.2.1.6). */
export async function createWorkloadCsr(id: Identity): Promise<WorkloadCsr> {
  const { privateKey, publicKey } = await makeKeyPair('ec', { namedCurve: 'P-256' });
  const generalNames = tlv(DER.SEQUENCE, tlv(DER.contextPrimitive(6), Buffer.from(formatSpiffeId(id), 'ascii')));
  const san = tlv(DER.SEQUENCE, SUBJECT_ALT_NAME, tlv(DER.BOOLEAN, Buffer.from([0xff])), tlv(DER.OCTET_STRING, generalNames));
  const attributes = tlv(DER.context(0), tlv(DER.SEQUENCE, EXTENSION_REQUEST, tlv(DER.SET, tlv(DER.SEQUENCE, san))));
  const info = tlv(
    DER.SEQUENCE,
    tlv(DER.INTEGER, Buffer.from([0])), // version 1
    tlv(DER.SEQUENCE), // empty subject: the SAN carries the name
    publicKey.export({ type: 'spki', format: 'der' }),
    attributes,
  );
  const signature = sign('sha256', info, { key: privateKey, dsaEncoding: 'der' });
  const csr = tlv(DER.SEQUENCE, info, tlv(DER.SEQUENCE, ECDSA_WITH_SHA256), tlv(DER.BIT_STRING, Buffer.from([0]), signature));
  return {
    key: { privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, privateKey },
    csrPem: toPem('CERTIFICATE REQUEST', csr),
  };
}
