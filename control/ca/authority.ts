// The certificate authority: signs workload certificates from CSRs. Whoever calls issue() has
// already decided that the caller may have `identity` (see service.ts); the CA checks that the
// CSR is well-formed, signed by its own key, and asks for exactly that identity and nothing else.
import { X509Certificate } from 'node:crypto';
import { toPem } from '../../common/identity/pem';
import { formatSpiffeId, tryParseSpiffeId, type Identity } from '../../common/identity/spiffe';
import { trustBundle, type TrustBundle } from '../../common/identity/verify';
import { subtle, x509 } from '../../common/identity/x509';
import { serialNumber } from '../../common/identity/serial';
import { loadOperatorCa, loadOrCreateRoot, type CaMaterial, type OperatorCaFiles } from './material';

export const DEFAULT_TTL_SECONDS = 24 * 3600;
export const DEFAULT_MAX_TTL_SECONDS = 7 * 24 * 3600;
/** Leaves start this much in the past so that peers with slightly slow clocks accept them. */
const BACKDATE_MS = 60_000;

export type CaErrorCode = 'invalid-csr' | 'identity-mismatch' | 'invalid-ttl';

export class CaError extends Error {
  constructor(
    readonly code: CaErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CaError';
  }
}

export interface CertificateAuthorityOptions {
  readonly trustDomain: string;
  /** Where a generated root is kept (<dataDir>/ca/…). Needed unless `operator` is given. */
  readonly dataDir?: string;
  /** Use this root or intermediate instead of a generated root. */
  readonly operator?: OperatorCaFiles;
  readonly defaultTtlSeconds?: number;
  readonly maxTtlSeconds?: number;
  /** The clock (tests). */
  readonly now?: () => Date;
}

export interface IssueRequest {
  readonly csrPem: string;
  /** The identity the caller is authorised for; the CSR must ask for exactly this. */
  readonly identity: Identity;
  /** 0 or undefined: the default TTL. */
  readonly ttlSeconds?: number;
}

export interface IssuedCertificate {
  /** PEM: leaf first, then intermediates (not the root). */
  readonly certChainPem: readonly string[];
  /** PEM roots. */
  readonly trustBundlePem: readonly string[];
  readonly spiffeId: string;
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface ServingCertificate {
  readonly privateKeyPem: string;
  readonly certChainPem: string;
  readonly trustBundlePem: string;
  readonly notAfter: Date;
}

const SAN_OID = '2.5.29.17';
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

function sanNames(ext: InstanceType<typeof x509.Extension>): Array<{ type: string; value: string }> {
  const san = ext instanceof x509.SubjectAlternativeNameExtension ? ext : new x509.SubjectAlternativeNameExtension(ext.rawData);
  return san.names.toJSON().map((n) => ({ type: n.type, value: n.value }));
}

function parseCsr(csrPem: string): InstanceType<typeof x509.Pkcs10CertificateRequest> {
  try {
    return new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new CaError('invalid-csr', `the CSR does not parse as PKCS#10 PEM: ${(err as Error).message}`);
  }
}

/**
 * The identity a CSR asks for (its one SPIFFE URI SAN), before anyone decides whether the caller
 * may have it. Throws CaError('invalid-csr') when the CSR does not name exactly one workload ID.
 */
export function requestedIdentity(csrPem: string): Identity {
  const csr = parseCsr(csrPem);
  const sanExt = csr.extensions.find((e) => e.type === SAN_OID);
  const names = sanExt ? sanNames(sanExt) : [];
  const urls = names.filter((n) => n.type === 'url').map((n) => n.value);
  if (urls.length !== 1) {
    throw new CaError(
      'invalid-csr',
      urls.length === 0
        ? "the CSR has no URI SAN: it must name the workload's SPIFFE ID"
        : `the CSR names ${urls.length} URI SANs (${urls.join(', ')}); it must name exactly one`,
    );
  }
  const id = tryParseSpiffeId(urls[0] as string);
  if (!id)
    throw new CaError(
      'invalid-csr',
      `the CSR's URI SAN '${urls[0]}' is not a workload SPIFFE ID (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)`,
    );
  return id;
}

export class CertificateAuthority {
  readonly trustDomain: string;
  readonly defaultTtlSeconds: number;
  readonly maxTtlSeconds: number;
  private readonly now: () => Date;
  private readonly bundle: TrustBundle;
  private readonly authorityKeyId: Promise<InstanceType<typeof x509.AuthorityKeyIdentifierExtension>>;

  private constructor(
    readonly material: CaMaterial,
    options: CertificateAuthorityOptions,
  ) {
    this.trustDomain = options.trustDomain;
    this.defaultTtlSeconds = options.defaultTtlSeconds ?? DEFAULT_TTL_SECONDS;
    this.maxTtlSeconds = options.maxTtlSeconds ?? DEFAULT_MAX_TTL_SECONDS;
    if (this.defaultTtlSeconds > this.maxTtlSeconds) {
      throw new Error(`the default certificate TTL (${this.defaultTtlSeconds}s) is longer than the maximum TTL (${this.maxTtlSeconds}s)`);
    }
    this.now = options.now ?? (() => new Date());
    this.bundle = trustBundle(this.trustDomain, [...material.rootsPem]);
    this.authorityKeyId = authorityKeyIdOf(material.signingCert);
  }

  /** Opens the CA: the operator's files if given, else the root in the data dir (made on first start). */
  static async open(options: CertificateAuthorityOptions): Promise<CertificateAuthority> {
    const now = (options.now ?? (() => new Date()))();
    let material: CaMaterial;
    if (options.operator) material = await loadOperatorCa(options.operator, now);
    else if (options.dataDir) material = await loadOrCreateRoot(options.dataDir, options.trustDomain, now);
    else throw new Error('the CA needs a data dir (to keep its root) or operator-supplied CA files');
    return new CertificateAuthority(material, options);
  }

  /** The roots as PEM: what peers verify against. */
  get trustBundlePem(): readonly string[] {
    return this.material.rootsPem;
  }

  get trustBundle(): TrustBundle {
    return this.bundle;
  }

  /** Signs a workload certificate for `req.identity` from the CSR; throws CaError when the request is unacceptable. */
  async issue(req: IssueRequest): Promise<IssuedCertificate> {
    const spiffeId = formatSpiffeId(req.identity);
    if (req.identity.trustDomain !== this.trustDomain) {
      throw new CaError('identity-mismatch', `${spiffeId} is not in this CA's trust domain '${this.trustDomain}'`);
    }
    const ttl = req.ttlSeconds && req.ttlSeconds > 0 ? req.ttlSeconds : this.defaultTtlSeconds;
    if (!Number.isInteger(ttl)) throw new CaError('invalid-ttl', `the requested TTL ${ttl}s is not a whole number of seconds`);
    if (ttl > this.maxTtlSeconds) {
      throw new CaError(
        'invalid-ttl',
        `the requested TTL ${ttl}s is longer than this CA's maximum of ${this.maxTtlSeconds}s; ask for less (0 = the default ${this.defaultTtlSeconds}s)`,
      );
    }

    const csr = parseCsr(req.csrPem);
    let signatureOk = false;
    try {
      signatureOk = await csr.verify();
    } catch {
      signatureOk = false;
    }
    if (!signatureOk) throw new CaError('invalid-csr', 'the CSR signature does not verify with the public key it carries');
    const alg = csr.publicKey.algorithm as { name?: string; namedCurve?: string; modulusLength?: number };
    const keyOk =
      (alg.name === 'ECDSA' && (alg.namedCurve === 'P-256' || alg.namedCurve === 'P-384')) ||
      (alg.name === 'RSASSA-PKCS1-v1_5' && (alg.modulusLength ?? 0) >= 2048);
    if (!keyOk) {
      throw new CaError(
        'invalid-csr',
        `the CSR's key (${alg.name ?? 'unknown'} ${alg.namedCurve ?? alg.modulusLength ?? ''}) is not accepted; use ECDSA P-256`,
      );
    }

    const sanExt = csr.extensions.find((e) => e.type === SAN_OID);
    const names = sanExt ? sanNames(sanExt) : [];
    const urls = names.filter((n) => n.type === 'url').map((n) => n.value);
    const others = names.filter((n) => n.type !== 'url');
    if (others.length > 0) {
      throw new CaError(
        'invalid-csr',
        `the CSR asks for ${others.map((n) => `${n.type} SAN '${n.value}'`).join(', ')}; a workload certificate carries only its SPIFFE URI SAN`,
      );
    }
    if (urls.length !== 1 || urls[0] !== spiffeId) {
      throw new CaError(
        'identity-mismatch',
        urls.length === 0 ? `the CSR has no URI SAN; it must ask for ${spiffeId}` : `the CSR asks for ${urls.join(', ')}, but the request is for ${spiffeId}`,
      );
    }

    const now = this.now();
    const notBefore = wholeSecond(now.getTime() - BACKDATE_MS);
    const caNotAfter = this.material.signingCert.notAfter;
    const notAfter = wholeSecond(Math.min(now.getTime() + ttl * 1000, caNotAfter.getTime()));
    const publicKey = await csr.publicKey.export();
    const serial = serialNumber();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: '',
      issuer: this.material.signingCert.subjectName,
      notBefore,
      notAfter,
      publicKey,
      signingKey: this.material.signingKey,
      signingAlgorithm: this.material.signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension([OID_SERVER_AUTH, OID_CLIENT_AUTH]),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], true),
        await this.authorityKeyId,
      ],
    });
    return {
      certChainPem: [cert.toString('pem') + '\n', ...this.material.intermediatesPem],
      trustBundlePem: this.material.rootsPem,
      spiffeId,
      serialNumber: serial,
      notBefore,
      notAfter,
    };
  }

  /**
   * A TLS serving certificate for the control plane itself (port 15012), made with a fresh key:
   * DNS and IP SANs for the names clients dial, plus the control plane's SPIFFE ID
   * (spiffe://<td>/ns/<namespace>/sa/<serviceAccount>). Good for `ttlSeconds` (default 1 year,
   * capped by the CA's own validity); the control plane makes a new one at each start.
   */
  async servingCertificate(options: {
    dnsNames?: readonly string[];
    ipAddresses?: readonly string[];
    namespace?: string;
    serviceAccount?: string;
    ttlSeconds?: number;
  }): Promise<ServingCertificate> {
    const keys = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as import('node:crypto').webcrypto.CryptoKeyPair;
    const now = this.now();
    const notAfter = wholeSecond(Math.min(now.getTime() + (options.ttlSeconds ?? 365 * 86400) * 1000, this.material.signingCert.notAfter.getTime()));
    const spiffeId = formatSpiffeId({
      trustDomain: this.trustDomain,
      namespace: options.namespace ?? 'nodemesh-system',
      serviceAccount: options.serviceAccount ?? 'nodemesh-control-plane',
    });
    const names: Array<{ type: 'dns' | 'ip' | 'url'; value: string }> = [
      ...(options.dnsNames ?? ['localhost']).map((value) => ({ type: 'dns' as const, value })),
      ...(options.ipAddresses ?? ['127.0.0.1', '::1']).map((value) => ({ type: 'ip' as const, value })),
      { type: 'url', value: spiffeId },
    ];
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serialNumber(),
      subject: 'CN=nodemesh control plane',
      issuer: this.material.signingCert.subjectName,
      notBefore: wholeSecond(now.getTime() - BACKDATE_MS),
      notAfter,
      publicKey: keys.publicKey,
      signingKey: this.material.signingKey,
      signingAlgorithm: this.material.signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension([OID_SERVER_AUTH]),
        new x509.SubjectAlternativeNameExtension(names, false),
        await this.authorityKeyId,
      ],
    });
    return {
      privateKeyPem: toPem('PRIVATE KEY', await subtle.exportKey('pkcs8', keys.privateKey)),
      certChainPem: [cert.toString('pem') + '\n', ...this.material.intermediatesPem].join(''),
      trustBundlePem: this.material.rootsPem.join(''),
      notAfter,
    };
  }
}

/** Certificates carry whole seconds; round down so what we report is what the certificate says. */
function wholeSecond(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

async function authorityKeyIdOf(cert: InstanceType<typeof x509.X509Certificate>): Promise<InstanceType<typeof x509.AuthorityKeyIdentifierExtension>> {
  const ski = cert.extensions.find((e) => e.type === '2.5.29.14');
  if (ski) return new x509.AuthorityKeyIdentifierExtension(new x509.SubjectKeyIdentifierExtension(ski.rawData).keyId);
  return x509.AuthorityKeyIdentifierExtension.create(await cert.publicKey.export());
}

/** node:crypto view of a PEM certificate (tests and callers that want fingerprints or dates). */
export function parseCertificate(pem: string): X509Certificate {
  return new X509Certificate(pem);
}
