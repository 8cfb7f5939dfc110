import { X509Certificate, type webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createWorkloadCsr } from '../../common/identity/keys';
import { toPem } from '../../common/identity/pem';
import { formatSpiffeId, identity } from '../../common/identity/spiffe';
import { trustBundle, verifyPeerChain } from '../../common/identity/verify';
import { subtle, x509 } from '../../common/identity/x509';
import { CaError, CertificateAuthority } from './authority';
import { CaSetupError, rootFiles } from './material';

const TD = 'cluster.local';
const alice = identity('shop', 'checkout');
const bob = identity('shop', 'payments');

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nm-ca-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function expectCaError(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CaError);
  expect((err as CaError).code).toBe(code);
  expect((err as CaError).message).toMatch(message);
}

describe('CertificateAuthority with a generated root', () => {
  it('creates a P-256 root on first start, key 0600 and cert 0644, and reuses it after a restart', async () => {
    const ca1 = await CertificateAuthority.open({ trustDomain: TD, dataDir: dir });
    const { keyFile, certFile } = rootFiles(dir);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(statSync(certFile).mode & 0o777).toBe(0o644);
    const root1 = new X509Certificate(ca1.trustBundlePem[0] as string);
    expect(root1.ca).toBe(true);
    expect(root1.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(root1.subject).toContain(`O=${TD}`);

    const { csrPem } = await createWorkloadCsr(alice);
    const issuedBefore = await ca1.issue({ csrPem, identity: alice });

    const ca2 = await CertificateAuthority.open({ trustDomain: TD, dataDir: dir });
    const root2 = new X509Certificate(ca2.trustBundlePem[0] as string);
    expect(root2.fingerprint256).toBe(root1.fingerprint256);
    // A certificate from before the restart still verifies against the reopened CA's bundle.
    expect(verifyPeerChain([...issuedBefore.certChainPem], ca2.trustBundle).spiffeId).toBe(formatSpiffeId(alice));
  });

  it('issues a 24 h leaf with only the SPIFFE URI SAN that chains to the root', async () => {
    const ca = await CertificateAuthority.open({ trustDomain: TD, dataDir: dir });
    const { csrPem, key } = await createWorkloadCsr(alice);
    const issued = await ca.issue({ csrPem, identity: alice });
    expect(issued.certChainPem).toHaveLength(1);
    const leaf = new X509Certificate(issued.certChainPem[0] as string);
    const root = new X509Certificate(issued.trustBundlePem[0] as string);
    expect(leaf.checkIssued(root)).toBe(true);
    expect(leaf.verify(root.publicKey)).toBe(true);
    expect(leaf.ca).toBe(false);
    expect(leaf.subjectAltName).toBe(`URI:${formatSpiffeId(alice)}`);
    expect(leaf.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']));
    expect(leaf.checkPrivateKey(key.privateKey)).toBe(true);
    const lifetime = new Date(leaf.validTo).getTime() - Date.now();
    expect(lifetime).toBeGreaterThan(24 * 3600_000 - 10_000);
    expect(lifetime).toBeLessThanOrEqual(24 * 3600_000);
    expect(issued.notAfter.getTime()).toBe(new Date(leaf.validTo).getTime());

    const parsed = new x509.X509Certificate(issued.certChainPem[0] as string);
    const ku = parsed.getExtension(x509.KeyUsagesExtension) ?? new x509.KeyUsagesExtension(parsed.extensions.find((e) => e.type === '2.5.29.15')!.rawData);
    expect(ku.usages).toBe(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement);
    expect(ku.critical).toBe(true);
  });

  it('honours a shorter requested TTL and refuses one above the maximum', async () => {
    const ca = await CertificateAuthority.open({ trustDomain: TD, dataDir: dir, maxTtlSeconds: 48 * 3600 });
    const { csrPem } = await createWorkloadCsr(alice);
    const short = await ca.issue({ csrPem, identity: alice, ttlSeconds: 600 });
    expect(short.notAfter.getTime() - Date.now()).toBeLessThanOrEqual(600_000);
    expect(short.notAfter.getTime() - Date.now()).toBeGreaterThan(590_000);
    await expectCaError(ca.issue({ csrPem, identity: alice, ttlSeconds: 49 * 3600 }), 'invalid-ttl', /longer than this CA's maximum of 172800s/);
  });

  it('refuses a CSR for another identity than the one authorised', async () => {
    const ca = await CertificateAuthority.open({ trustDomain: TD, dataDir: dir });
    const { csrPem } = await createWorkloadCsr(bob);
    await expectCaError(
      ca.issue({ csrPem, identity: alice }),
      'identity-mismatch',
      /asks for spiffe:\/\/cluster.local\/ns\/shop\/sa\/payments, but the request is for spiffe:\/\/cluster.local\/ns\/shop\/sa\/checkout/,
    );
    const foreign = identity('shop', 'checkout', 'other.td');
    const { csrPem: foreignCsr } = await createWorkloadCsr(foreign);
    await expectCaError(ca.issue({ csrPem: foreignCsr, identity: foreign }), 'identity-mismatch', /not in this CA's trust domain 'cluster.local'/);
  });

  it('refuses garbage, a tampered CSR, and extra SANs', async () => {
    const ca = await CertificateAuthority.open({ trustDomain: TD, dataDir: dir });
    await expectCaError(ca.issue({ csrPem: 'not a csr', identity: alice }), 'invalid-csr', /does not parse/);

    // Swap in another key's public key: the signature no longer matches.
    const keys = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const other = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const good = await x509.Pkcs10CertificateRequestGenerator.create({
      name: '',
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: formatSpiffeId(alice) }], true)],
    });
    const der = Buffer.from(good.rawData);
    const spkiOld = Buffer.from(await subtle.exportKey('spki', keys.publicKey));
    const spkiNew = Buffer.from(await subtle.exportKey('spki', other.publicKey));
    const at = der.indexOf(spkiOld);
    expect(at).toBeGreaterThan(0);
    spkiNew.copy(der, at);
    await expectCaError(ca.issue({ csrPem: toPem('CERTIFICATE REQUEST', der), identity: alice }), 'invalid-csr', /signature does not verify/);

    const withDns = await x509.Pkcs10CertificateRequestGenerator.create({
      name: '',
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.SubjectAlternativeNameExtension(
          [
            { type: 'url', value: formatSpiffeId(alice) },
            { type: 'dns', value: 'evil.example' },
          ],
          true,
        ),
      ],
    });
    await expectCaError(ca.issue({ csrPem: withDns.toString('pem'), identity: alice }), 'invalid-csr', /dns SAN 'evil.example'/);

    const noSan = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=x', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
    await expectCaError(ca.issue({ csrPem: noSan.toString('pem'), identity: alice }), 'identity-mismatch', /no URI SAN/);
  });

  it('refuses to start with half a root rather than silently making a new one', async () => {
    await CertificateAuthority.open({ trustDomain: TD, dataDir: dir });
    unlinkSync(rootFiles(dir).certFile);
    await expect(CertificateAuthority.open({ trustDomain: TD, dataDir: dir })).rejects.toThrow(/root-cert.pem is missing but .*root-key.pem exists/);
  });

  it('makes a serving certificate for the control plane with DNS, IP and SPIFFE SANs', async () => {
    const ca = await CertificateAuthority.open({ trustDomain: TD, dataDir: dir });
    const serving = await ca.servingCertificate({ dnsNames: ['localhost', 'nodemesh-control'], ipAddresses: ['127.0.0.1'] });
    const cert = new X509Certificate(serving.certChainPem);
    expect(cert.checkHost('nodemesh-control')).toBe('nodemesh-control');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.subjectAltName).toContain('URI:spiffe://cluster.local/ns/nodemesh-system/sa/nodemesh-control-plane');
    expect(cert.verify(new X509Certificate(serving.trustBundlePem).publicKey)).toBe(true);
  });
});

describe('CertificateAuthority with an operator-supplied intermediate', () => {
  async function makeOfflineRootAndIntermediate(): Promise<{ rootPem: string; intPem: string; intKeyPem: string }> {
    const alg = { name: 'ECDSA', namedCurve: 'P-256' } as const;
    const rootKeys = (await subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'O=example, CN=offline root',
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: new Date(Date.now() + 365 * 86400_000),
      keys: rootKeys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.BasicConstraintsExtension(true, 1, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
      ],
    });
    const intKeys = (await subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const int = await x509.X509CertificateGenerator.create({
      serialNumber: '02',
      subject: 'O=example, CN=mesh intermediate',
      issuer: root.subjectName,
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: new Date(Date.now() + 180 * 86400_000),
      publicKey: intKeys.publicKey,
      signingKey: rootKeys.privateKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(intKeys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
      ],
    });
    return {
      rootPem: root.toString('pem') + '\n',
      intPem: int.toString('pem') + '\n',
      intKeyPem: toPem('PRIVATE KEY', await subtle.exportKey('pkcs8', intKeys.privateKey)),
    };
  }

  it('signs with the intermediate, sends it in the chain, and gives the offline root as the bundle', async () => {
    const { rootPem, intPem, intKeyPem } = await makeOfflineRootAndIntermediate();
    writeFileSync(join(dir, 'chain.pem'), intPem + rootPem);
    writeFileSync(join(dir, 'int-key.pem'), intKeyPem, { mode: 0o600 });
    const ca = await CertificateAuthority.open({ trustDomain: TD, operator: { certChainFile: join(dir, 'chain.pem'), keyFile: join(dir, 'int-key.pem') } });
    expect(ca.material.source).toBe('operator');
    expect(ca.trustBundlePem).toEqual([rootPem]);

    const { csrPem } = await createWorkloadCsr(alice);
    const issued = await ca.issue({ csrPem, identity: alice });
    expect(issued.certChainPem).toHaveLength(2);
    expect(new X509Certificate(issued.certChainPem[1] as string).fingerprint256).toBe(new X509Certificate(intPem).fingerprint256);
    const leaf = new X509Certificate(issued.certChainPem[0] as string);
    expect(leaf.verify(new X509Certificate(intPem).publicKey)).toBe(true);
    // The offline root alone verifies the chain the CA hands out.
    const peer = verifyPeerChain([...issued.certChainPem], trustBundle(TD, rootPem));
    expect(peer.spiffeId).toBe(formatSpiffeId(alice));
    // Without the intermediate, the leaf does not chain to the root.
    expect(() => verifyPeerChain([issued.certChainPem[0] as string], trustBundle(TD, rootPem))).toThrow(/does not chain/);
    // No root file is written to the data dir for an operator CA.
    expect(() => statSync(rootFiles(dir).keyFile)).toThrow();
  });

  it('takes the root from a separate file when the chain file holds only the intermediate', async () => {
    const { rootPem, intPem, intKeyPem } = await makeOfflineRootAndIntermediate();
    writeFileSync(join(dir, 'int.pem'), intPem);
    writeFileSync(join(dir, 'root.pem'), rootPem);
    writeFileSync(join(dir, 'int-key.pem'), intKeyPem, { mode: 0o600 });
    const files = { certChainFile: join(dir, 'int.pem'), keyFile: join(dir, 'int-key.pem') };
    await expect(CertificateAuthority.open({ trustDomain: TD, operator: files })).rejects.toThrow(/no root certificate/);
    const ca = await CertificateAuthority.open({ trustDomain: TD, operator: { ...files, rootCertFile: join(dir, 'root.pem') } });
    const { csrPem } = await createWorkloadCsr(alice);
    const issued = await ca.issue({ csrPem, identity: alice });
    expect(verifyPeerChain([...issued.certChainPem], ca.trustBundle).identity).toEqual(alice);
  });

  it('accepts an operator-supplied root (self-signed) and signs leaves directly under it', async () => {
    const keys = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '03',
      name: 'O=operator, CN=operator root',
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: new Date(Date.now() + 365 * 86400_000),
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    });
    const rootPem = root.toString('pem') + '\n';
    writeFileSync(join(dir, 'root.pem'), rootPem);
    writeFileSync(join(dir, 'root-key.pem'), toPem('PRIVATE KEY', await subtle.exportKey('pkcs8', keys.privateKey)), { mode: 0o600 });
    const ca = await CertificateAuthority.open({ trustDomain: TD, operator: { certChainFile: join(dir, 'root.pem'), keyFile: join(dir, 'root-key.pem') } });
    expect(ca.trustBundlePem).toEqual([rootPem]);
    const { csrPem } = await createWorkloadCsr(alice);
    const issued = await ca.issue({ csrPem, identity: alice });
    expect(issued.certChainPem).toHaveLength(1);
    expect(verifyPeerChain([...issued.certChainPem], trustBundle(TD, rootPem)).identity).toEqual(alice);
  });

  it('refuses a key that does not belong to the CA certificate', async () => {
    const a = await makeOfflineRootAndIntermediate();
    const b = await makeOfflineRootAndIntermediate();
    writeFileSync(join(dir, 'chain.pem'), a.intPem + a.rootPem);
    writeFileSync(join(dir, 'key.pem'), b.intKeyPem);
    const err = await CertificateAuthority.open({ trustDomain: TD, operator: { certChainFile: join(dir, 'chain.pem'), keyFile: join(dir, 'key.pem') } }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CaSetupError);
    expect((err as Error).message).toMatch(/does not belong to the certificate 'O=example\s*\n?,?\s*CN=mesh intermediate'|does not belong to the certificate/);
  });
});
