// The node proxy's own DER/PEM code (der.ts, san.ts, pem.ts, keys.ts) checked against
// @peculiar/x509, which the CA uses and which the node proxy no longer loads.
import { X509Certificate, createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { derChildren, oid, tlv } from './der';
import { createWorkloadCsr } from './keys';
import { splitPem, toPem } from './pem';
import { uriSans } from './san';
import { identity } from './spiffe';
import { x509 } from './x509';
import { selfSignedWithSans as selfSigned } from '../../test/support/self-signed';

describe('uriSans', () => {
  it('reads every URI SAN in order, skipping other names, as @peculiar/x509 does', async () => {
    const cert = await selfSigned([
      { type: 'dns', value: 'web.shop.svc' },
      { type: 'url', value: 'spiffe://cluster.local/ns/shop/sa/web' },
      { type: 'url', value: 'https://example.test/a,b"c' },
    ]);
    expect(uriSans(new Uint8Array(cert.rawData))).toEqual(['spiffe://cluster.local/ns/shop/sa/web', 'https://example.test/a,b"c']);
    // a Buffer that is a view into a larger one (as node:tls hands out raw certificates)
    const pooled = Buffer.concat([Buffer.from([1, 2, 3]), Buffer.from(cert.rawData), Buffer.from([4])]);
    expect(uriSans(pooled.subarray(3, pooled.length - 1))).toEqual(['spiffe://cluster.local/ns/shop/sa/web', 'https://example.test/a,b"c']);
  });

  it('gives [] for a certificate without a SAN extension', async () => {
    expect(uriSans((await selfSigned(undefined)).rawData)).toEqual([]);
    expect(uriSans((await selfSigned([{ type: 'dns', value: 'a.test' }])).rawData)).toEqual([]);
  });

  it('throws (never hangs or reads past the end) on every truncation of a certificate', async () => {
    const der = Buffer.from((await selfSigned([{ type: 'url', value: 'spiffe://cluster.local/ns/a/sa/b' }])).rawData);
    for (let n = 0; n < der.length; n++) expect(() => uriSans(der.subarray(0, n)), `first ${n} bytes`).toThrow(/DER/);
    expect(() => uriSans(Buffer.from([0x30, 0x80, 0, 0]))).toThrow(/indefinite/);
  });
});

describe('der', () => {
  it('encodes lengths in short and long form and object identifiers base 128', () => {
    expect(tlv(0x04, Buffer.alloc(3)).subarray(0, 2)).toEqual(Buffer.from([0x04, 3]));
    expect(tlv(0x04, Buffer.alloc(200)).subarray(0, 3)).toEqual(Buffer.from([0x04, 0x81, 200]));
    expect(tlv(0x04, Buffer.alloc(300)).subarray(0, 4)).toEqual(Buffer.from([0x04, 0x82, 1, 44]));
    expect(oid('1.2.840.10045.4.3.2')).toEqual(Buffer.from('06082a8648ce3d040302', 'hex'));
    const [e] = derChildren(tlv(0x30, Buffer.alloc(300, 7)));
    expect(e?.tag).toBe(0x30);
    expect(e?.content.length).toBe(300);
  });
});

describe('createWorkloadCsr', () => {
  it('makes a PKCS#10 request @peculiar/x509 verifies: empty subject, the SPIFFE ID as its one critical URI SAN, the key it returns', async () => {
    const id = identity('shop', 'web');
    const { csrPem, key } = await createWorkloadCsr(id);
    expect(csrPem).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----\n[\s\S]+\n-----END CERTIFICATE REQUEST-----\n$/);
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    expect(await csr.verify()).toBe(true);
    expect(csr.subject).toBe('');
    const raw = csr.extensions.find((e) => e.type === '2.5.29.17');
    const san = raw && new x509.SubjectAlternativeNameExtension(raw.rawData);
    expect(csr.extensions.length).toBe(1);
    expect(san?.critical).toBe(true);
    expect(san?.names.items.map((n) => [n.type, n.value])).toEqual([['url', 'spiffe://cluster.local/ns/shop/sa/web']]);
    // the request's public key is the returned private key's
    const spki = Buffer.from(csr.publicKey.rawData);
    expect(createPublicKey(key.privateKey).export({ type: 'spki', format: 'der' })).toEqual(spki);
    expect(key.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });
});

describe('pem', () => {
  it('writes what @peculiar/x509 writes and splits certificate blocks out of a bundle', async () => {
    const a = await selfSigned(undefined);
    const b = await selfSigned([{ type: 'url', value: 'spiffe://cluster.local/ns/a/sa/b' }]);
    expect(toPem('CERTIFICATE', a.rawData)).toBe(`${a.toString('pem')}\n`);
    const bundle = `# roots\nsubject=CN=a\n${toPem('CERTIFICATE', a.rawData)}\n${toPem('PRIVATE KEY', Buffer.from('k'))}${toPem('CERTIFICATE', new Uint8Array(b.rawData)).replace(/\n/g, '\r\n')}`;
    const certs = splitPem(bundle);
    expect(certs).toEqual([toPem('CERTIFICATE', a.rawData), toPem('CERTIFICATE', b.rawData)]);
    expect(new X509Certificate(certs[1] as string).subjectAltName).toBe('URI:spiffe://cluster.local/ns/a/sa/b');
    expect(splitPem('no pem here')).toEqual([]);
    expect(() => splitPem('-----BEGIN CERTIFICATE-----\nnot*base64\n-----END CERTIFICATE-----\n')).toThrow(/base64/);
  });
});
