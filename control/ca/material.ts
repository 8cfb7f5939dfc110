// The CA's signing material: either a root the control plane made on its first start and keeps
// in its data dir (<dataDir>/ca/root-key.pem 0600, <dataDir>/ca/root-cert.pem 0644), or a root or
// intermediate the operator supplies as a certificate chain file plus a key file.
import { X509Certificate, createPrivateKey, createPublicKey, randomBytes, type KeyObject, type webcrypto } from 'node:crypto';
import { closeSync, constants, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeSync, chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { serialNumber } from '../../common/identity/serial';
import { splitPem, toPem } from '../../common/identity/pem';
import { subtle, x509 } from '../../common/identity/x509';

export const ROOT_VALIDITY_DAYS = 3650;

/** Files of an operator-supplied CA. */
export interface OperatorCaFiles {
  /** PEM: the signing certificate first (a root or an intermediate), then its issuers. */
  readonly certChainFile: string;
  /** PEM private key (PKCS#8 or SEC1/PKCS#1) of the signing certificate. */
  readonly keyFile: string;
  /** PEM root certificate(s), when the chain file does not end in the root. */
  readonly rootCertFile?: string;
}

export interface CaMaterial {
  readonly source: 'generated' | 'operator';
  /** The certificate that signs leaves. */
  readonly signingCert: InstanceType<typeof x509.X509Certificate>;
  readonly signingKey: webcrypto.CryptoKey;
  readonly signingAlgorithm: { name: string; hash: string };
  /** PEM certificates that go after the leaf in an issued chain (signing cert up to, not including, the root). */
  readonly intermediatesPem: readonly string[];
  /** PEM roots: the trust bundle. */
  readonly rootsPem: readonly string[];
}

export class CaSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CaSetupError';
  }
}

export function rootFiles(dataDir: string): { keyFile: string; certFile: string } {
  return { keyFile: join(dataDir, 'ca', 'root-key.pem'), certFile: join(dataDir, 'ca', 'root-cert.pem') };
}

/** Writes a file atomically (temp file, fsync, rename) with the given mode. */
export function writeFileAtomic(path: string, data: string, mode: number): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, mode); // the umask may have narrowed it
  renameSync(tmp, path);
}

interface ImportedKey {
  key: webcrypto.CryptoKey;
  algorithm: { name: string; hash: string };
}

async function importSigningKey(keyObject: KeyObject, what: string): Promise<ImportedKey> {
  const der = keyObject.export({ type: 'pkcs8', format: 'der' });
  const type = keyObject.asymmetricKeyType;
  if (type === 'ec') {
    const curve = keyObject.asymmetricKeyDetails?.namedCurve;
    const named = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : undefined;
    if (!named) throw new CaSetupError(`${what} is an EC key on curve ${curve ?? 'unknown'}; use P-256 or P-384`);
    const hash = named === 'P-256' ? 'SHA-256' : 'SHA-384';
    const key = await subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: named }, false, ['sign']);
    return { key, algorithm: { name: 'ECDSA', hash } };
  }
  if (type === 'rsa') {
    const bits = keyObject.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw new CaSetupError(`${what} is a ${bits}-bit RSA key; use at least 2048 bits (or ECDSA P-256)`);
    const key = await subtle.importKey('pkcs8', der, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign']);
    return { key, algorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } };
  }
  throw new CaSetupError(`${what} is a ${type ?? 'unknown'} key; the CA signs with ECDSA (P-256/P-384) or RSA`);
}

function isSelfSigned(cert: X509Certificate): boolean {
  try {
    return cert.checkIssued(cert) && cert.verify(cert.publicKey);
  } catch {
    return false;
  }
}

function checkCurrent(cert: X509Certificate, what: string, now: Date): void {
  if (now < new Date(cert.validFrom)) throw new CaSetupError(`${what} is not valid before ${cert.validFrom}`);
  if (now > new Date(cert.validTo)) throw new CaSetupError(`${what} expired at ${cert.validTo}; supply a current CA certificate`);
}

function readPemFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new CaSetupError(`cannot read the ${what} ${path}: ${(err as Error).message}`);
  }
}

/** Loads an operator-supplied root or intermediate CA and checks it is usable. */
export async function loadOperatorCa(files: OperatorCaFiles, now = new Date()): Promise<CaMaterial> {
  const chainPem = splitPem(readPemFile(files.certChainFile, 'CA certificate chain file'));
  if (chainPem.length === 0) throw new CaSetupError(`${files.certChainFile} holds no PEM certificate`);
  const chain = chainPem.map((p) => new X509Certificate(p));
  const signing = chain[0] as X509Certificate;
  if (!signing.ca)
    throw new CaSetupError(`the first certificate in ${files.certChainFile} ('${signing.subject}') is not a CA certificate (basicConstraints CA:TRUE)`);
  checkCurrent(signing, `the CA certificate '${signing.subject}' in ${files.certChainFile}`, now);

  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(readPemFile(files.keyFile, 'CA key file'));
  } catch (err) {
    if (err instanceof CaSetupError) throw err;
    throw new CaSetupError(`cannot parse the CA key ${files.keyFile}: ${(err as Error).message} (expected an unencrypted PEM private key)`);
  }
  const spki = (k: KeyObject): Buffer => k.export({ type: 'spki', format: 'der' });
  if (!spki(createPublicKey(privateKey)).equals(spki(signing.publicKey))) {
    throw new CaSetupError(`the key in ${files.keyFile} does not belong to the certificate '${signing.subject}' in ${files.certChainFile}`);
  }

  const rootsPem: string[] = files.rootCertFile ? splitPem(readPemFile(files.rootCertFile, 'root certificate file')) : [];
  const roots = rootsPem.map((p) => new X509Certificate(p));
  for (const c of chain) {
    if (isSelfSigned(c) && !roots.some((r) => r.fingerprint256 === c.fingerprint256)) {
      roots.push(c);
      rootsPem.push(c.toString());
    }
  }
  if (roots.length === 0) {
    throw new CaSetupError(
      `no root certificate: ${files.certChainFile} does not end in a self-signed root; add the root to it or pass the root certificate file`,
    );
  }

  // The signing certificate must chain to a root through the given intermediates.
  const intermediatesPem: string[] = [];
  let current = signing;
  for (let depth = 0; ; depth++) {
    if (roots.some((r) => r.fingerprint256 === current.fingerprint256)) break; // the signing cert is a root
    intermediatesPem.push(current.toString());
    const root = roots.find((r) => current.checkIssued(r) && current.verify(r.publicKey));
    if (root) break;
    const next = chain.find((c) => c !== current && c.ca && current.checkIssued(c) && current.verify(c.publicKey));
    if (!next || depth > 5) {
      throw new CaSetupError(
        `the CA certificate '${current.subject}' does not chain to any root given (issuer '${current.issuer}'); include its issuers in ${files.certChainFile}`,
      );
    }
    checkCurrent(next, `intermediate '${next.subject}'`, now);
    current = next;
  }

  const imported = await importSigningKey(privateKey, `the CA key ${files.keyFile}`);
  return {
    source: 'operator',
    signingCert: new x509.X509Certificate(signing.raw),
    signingKey: imported.key,
    signingAlgorithm: imported.algorithm,
    intermediatesPem,
    rootsPem,
  };
}

/**
 * Loads the root kept in `dataDir`, or makes one (ECDSA P-256, ten years) on first start. A key
 * without its certificate (or the reverse) is an error, never a reason to make a new root: that
 * would silently break trust with every certificate already issued.
 */
export async function loadOrCreateRoot(dataDir: string, trustDomain: string, now = new Date()): Promise<CaMaterial> {
  const { keyFile, certFile } = rootFiles(dataDir);
  const haveKey = existsSync(keyFile);
  const haveCert = existsSync(certFile);
  if (haveKey !== haveCert) {
    throw new CaSetupError(
      `${haveKey ? certFile : keyFile} is missing but ${haveKey ? keyFile : certFile} exists; restore it from a backup, or remove both to make a new root (every workload certificate will then be re-issued)`,
    );
  }
  if (haveKey) {
    const mode = statSync(keyFile).mode & 0o777;
    if (mode & 0o077) chmodSync(keyFile, 0o600);
    return { ...(await loadOperatorCa({ certChainFile: certFile, keyFile }, now)), source: 'generated' };
  }

  const keys = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const notBefore = new Date(now.getTime() - 60_000);
  const notAfter = new Date(now.getTime() + ROOT_VALIDITY_DAYS * 86_400_000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `O=${trustDomain}, CN=nodemesh root CA`,
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const keyPem = toPem('PRIVATE KEY', await subtle.exportKey('pkcs8', keys.privateKey));
  writeFileAtomic(keyFile, keyPem, 0o600);
  writeFileAtomic(certFile, cert.toString('pem') + '\n', 0o644);
  return { ...(await loadOperatorCa({ certChainFile: certFile, keyFile }, now)), source: 'generated' };
}
