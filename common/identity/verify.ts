// Peer verification for mesh mTLS: a peer's certificate chain must lead to a root of the trust
// bundle, every certificate must be inside its validity window, and the leaf must carry exactly
// one SPIFFE URI SAN in the bundle's trust domain (and, where the caller knows whom it meant to
// reach, that exact identity). The chain is checked with node:crypto's X509Certificate, the SPIFFE
// ID read from the leaf's DER (san.ts). Checking a chain costs ~0.5 ms of CPU, so what a chain
// proved is remembered per trust bundle and leaf certificate (its SHA-256 fingerprint) while every
// certificate of it is valid: a handshake with a peer seen before costs a lookup plus the checks
// that depend on the call (the peer's role, the identity expected). Helpers at the bottom plug
// this into node:tls on both sides.
import { X509Certificate } from 'node:crypto';
import type { ConnectionOptions, DetailedPeerCertificate, PeerCertificate, TLSSocket, TlsOptions } from 'node:tls';
import { splitPem } from './pem';
import { uriSans } from './san';
import { formatSpiffeId, sameIdentity, tryParseSpiffeId, type Identity } from './spiffe';

const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const MAX_CHAIN_DEPTH = 6;

/** The roots a trust domain's certificates must chain to. */
export interface TrustBundle {
  readonly trustDomain: string;
  readonly roots: readonly X509Certificate[];
  /** The roots as one PEM string, ready for node:tls `ca`. */
  readonly pem: string;
}

export type PeerVerificationReason =
  | 'no-certificate'
  | 'untrusted'
  | 'expired'
  | 'not-yet-valid'
  | 'not-a-leaf'
  | 'bad-usage'
  | 'no-spiffe-id'
  | 'wrong-trust-domain'
  | 'unexpected-identity';

export class PeerVerificationError extends Error {
  constructor(
    readonly reason: PeerVerificationReason,
    message: string,
  ) {
    super(message);
    this.name = 'PeerVerificationError';
  }
}

/** What a verified peer proved. */
export interface VerifiedPeer {
  readonly identity: Identity;
  readonly spiffeId: string;
  readonly leaf: X509Certificate;
  readonly notAfter: Date;
}

/** Which side the peer played: its leaf must allow that use (extended key usage). */
export type PeerRole = 'server' | 'client';

export interface PeerVerifyOptions {
  /** The peer must be exactly this identity (or one of these). */
  readonly expected?: Identity | readonly Identity[];
  readonly role?: PeerRole;
  readonly now?: Date;
}

/** Builds a trust bundle from PEM text(s) or DER buffers of the root certificates. */
export function trustBundle(trustDomain: string, roots: string | readonly (string | Buffer | X509Certificate)[]): TrustBundle {
  const list = typeof roots === 'string' ? splitPem(roots) : roots;
  const certs: X509Certificate[] = [];
  for (const r of list) {
    if (r instanceof X509Certificate) certs.push(r);
    else if (typeof r === 'string') for (const p of splitPem(r)) certs.push(new X509Certificate(p));
    else certs.push(new X509Certificate(r));
  }
  if (certs.length === 0) throw new Error(`the trust bundle for '${trustDomain}' has no certificate: pass the root CA certificate(s) in PEM`);
  for (const c of certs) {
    if (!c.ca) throw new Error(`trust bundle certificate '${c.subject}' is not a CA certificate (basicConstraints CA:FALSE)`);
  }
  return { trustDomain, roots: certs, pem: certs.map((c) => c.toString()).join('') };
}

/** A chain as node:tls hands it over (getPeerCertificate(true)), or a list of DER/PEM/X509Certificate (leaf first). */
export type PeerChain = DetailedPeerCertificate | PeerCertificate | readonly (Buffer | string | X509Certificate)[];

function toCertificates(chain: PeerChain): X509Certificate[] {
  if (Array.isArray(chain)) {
    return (chain as readonly (Buffer | string | X509Certificate)[]).map((c) => (c instanceof X509Certificate ? c : new X509Certificate(c)));
  }
  const out: X509Certificate[] = [];
  let cur: DetailedPeerCertificate | undefined = chain as DetailedPeerCertificate;
  const seen = new Set<DetailedPeerCertificate>();
  while (cur && cur.raw && !seen.has(cur) && out.length <= MAX_CHAIN_DEPTH) {
    seen.add(cur);
    out.push(new X509Certificate(cur.raw));
    cur = cur.issuerCertificate;
  }
  return out;
}

function checkValidity(cert: X509Certificate, now: Date, what: string): void {
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (now < from)
    throw new PeerVerificationError(
      'not-yet-valid',
      `the peer's ${what} is not valid before ${from.toISOString()} (now ${now.toISOString()}); check the clocks`,
    );
  if (now > to) throw new PeerVerificationError('expired', `the peer's ${what} expired at ${to.toISOString()} (now ${now.toISOString()})`);
}

function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** Caches are cleared when they reach this many certificates (a node sees far fewer peers). */
const CACHE_LIMIT = 4096;
const sanIds = new Map<string, string>();

/**
 * The one SPIFFE URI SAN of a certificate. Throws if there is none, or more than one URI SAN
 * (a workload certificate names exactly one identity). Remembered per certificate.
 */
export function spiffeIdOf(cert: X509Certificate): string {
  const fingerprint = cert.fingerprint256;
  const known = sanIds.get(fingerprint);
  if (known !== undefined) return known;
  const uris = uriSans(cert.raw);
  if (uris.length !== 1) {
    throw new PeerVerificationError(
      'no-spiffe-id',
      uris.length === 0
        ? 'the peer certificate has no URI SAN, so it names no SPIFFE identity'
        : `the peer certificate has ${uris.length} URI SANs (${uris.join(', ')}); a workload certificate has exactly one`,
    );
  }
  if (sanIds.size >= CACHE_LIMIT) sanIds.clear();
  sanIds.set(fingerprint, uris[0] as string);
  return uris[0] as string;
}

/** What checking one chain against a bundle proved: the leaf's identity, while every certificate of the chain is valid. */
interface ProvenChain {
  readonly identity: Identity;
  readonly spiffeId: string;
  readonly leaf: X509Certificate;
  /** The latest notBefore and the earliest notAfter of the certificates checked (ms). */
  readonly validFrom: number;
  readonly validTo: number;
  /** The leaf's extended key usages (empty: any use). */
  readonly ekus: readonly string[];
}

const proven = new WeakMap<TrustBundle, Map<string, ProvenChain>>();
let cacheHits = 0;
let cacheMisses = 0;

/** How often a peer's chain was found already proven (tests, benchmarks). */
export function peerCacheStats(): { hits: number; misses: number } {
  return { hits: cacheHits, misses: cacheMisses };
}

/** The peer a chain proved earlier, if its leaf is known under this bundle and the chain is valid now. */
function knownPeer(bundle: TrustBundle, leafFingerprint: string | undefined, options: PeerVerifyOptions): VerifiedPeer | undefined {
  const p = leafFingerprint ? proven.get(bundle)?.get(leafFingerprint) : undefined;
  const now = (options.now ?? new Date()).getTime();
  if (!p || now < p.validFrom || now > p.validTo) return undefined; // the full check says what is wrong
  cacheHits++;
  return checkUse(p, options);
}

function remember(bundle: TrustBundle, p: ProvenChain): void {
  let byLeaf = proven.get(bundle);
  if (!byLeaf) proven.set(bundle, (byLeaf = new Map()));
  if (byLeaf.size >= CACHE_LIMIT) byLeaf.clear();
  byLeaf.set(p.leaf.fingerprint256, p);
}

/** The checks that depend on the call, not on the chain: the use the peer made of it and whom the caller meant to reach. */
function checkUse(p: ProvenChain, options: PeerVerifyOptions): VerifiedPeer {
  if (options.role) {
    const want = options.role === 'server' ? EKU_SERVER_AUTH : EKU_CLIENT_AUTH;
    if (p.ekus.length > 0 && !p.ekus.includes(want)) {
      throw new PeerVerificationError('bad-usage', `the peer certificate may not be used as a TLS ${options.role} (extended key usage lacks ${want})`);
    }
  }
  if (options.expected) {
    const expected: readonly Identity[] = Array.isArray(options.expected) ? (options.expected as readonly Identity[]) : [options.expected as Identity];
    if (!expected.some((e) => sameIdentity(e, p.identity))) {
      throw new PeerVerificationError('unexpected-identity', `the peer is ${p.spiffeId}, but ${expected.map(formatSpiffeId).join(' or ')} was expected`);
    }
  }
  return { identity: p.identity, spiffeId: p.spiffeId, leaf: p.leaf, notAfter: new Date(p.leaf.validTo) };
}

/** The leaf's fingerprint where it comes without parsing: node:tls's peer chain, or a parsed leaf. */
function presentedFingerprint(chain: PeerChain): string | undefined {
  if (!Array.isArray(chain)) return (chain as PeerCertificate).fingerprint256 || undefined;
  const leaf = (chain as readonly unknown[])[0];
  return leaf instanceof X509Certificate ? leaf.fingerprint256 : undefined; // DER or PEM would need parsing first
}

/** Verifies a peer chain against the trust bundle; returns the peer's identity or throws PeerVerificationError. */
export function verifyPeerChain(chain: PeerChain, bundle: TrustBundle, options: PeerVerifyOptions = {}): VerifiedPeer {
  const known = knownPeer(bundle, presentedFingerprint(chain), options);
  if (known) return known;
  cacheMisses++;
  const p = proveChain(toCertificates(chain), bundle, options.now ?? new Date());
  remember(bundle, p);
  return checkUse(p, options);
}

/** Checks a chain (leaf first) against the bundle at `now`: the chain, every validity window, the SPIFFE ID and its trust domain. */
function proveChain(certs: readonly X509Certificate[], bundle: TrustBundle, now: Date): ProvenChain {
  const leaf = certs[0];
  if (!leaf) throw new PeerVerificationError('no-certificate', 'the peer presented no certificate');
  if (leaf.ca) throw new PeerVerificationError('not-a-leaf', `the peer presented a CA certificate ('${leaf.subject}') as its own`);
  checkValidity(leaf, now, 'certificate');
  let validFrom = Date.parse(leaf.validFrom);
  let validTo = Date.parse(leaf.validTo);
  const window = (c: X509Certificate): void => {
    validFrom = Math.max(validFrom, Date.parse(c.validFrom));
    validTo = Math.min(validTo, Date.parse(c.validTo));
  };

  // Walk from the leaf up through the presented intermediates to one of the bundle's roots.
  let current = leaf;
  const used = new Set<X509Certificate>([leaf]);
  for (let depth = 0; ; depth++) {
    const root = bundle.roots.find((r) => issuedBy(current, r));
    if (root) {
      checkValidity(root, now, 'root certificate');
      window(root);
      break;
    }
    if (depth >= MAX_CHAIN_DEPTH) throw new PeerVerificationError('untrusted', `the peer's chain is longer than ${MAX_CHAIN_DEPTH} certificates`);
    const next = certs.find((c) => !used.has(c) && c.ca && issuedBy(current, c));
    if (!next) {
      throw new PeerVerificationError(
        'untrusted',
        `the peer's certificate (issued by '${current.issuer}') does not chain to the trust bundle of '${bundle.trustDomain}'; is the peer using another mesh's CA?`,
      );
    }
    checkValidity(next, now, `intermediate certificate '${next.subject}'`);
    window(next);
    used.add(next);
    current = next;
  }

  const spiffeId = spiffeIdOf(leaf);
  const id = tryParseSpiffeId(spiffeId);
  if (!id) throw new PeerVerificationError('no-spiffe-id', `the peer certificate's URI SAN '${spiffeId}' is not a workload SPIFFE ID`);
  if (id.trustDomain !== bundle.trustDomain) {
    throw new PeerVerificationError('wrong-trust-domain', `the peer identity ${spiffeId} is in trust domain '${id.trustDomain}', not '${bundle.trustDomain}'`);
  }
  // node:crypto names the extended key usage OIDs keyUsage
  return { identity: id, spiffeId, leaf, validFrom, validTo, ekus: leaf.keyUsage ?? [] };
}

/**
 * node:tls client options that verify the server: OpenSSL checks the chain against the bundle,
 * then `checkServerIdentity` checks the SPIFFE ID (trust domain and, if given, the expected
 * destination identity) instead of a host name. Merge with the client's own `key`/`cert`.
 */
export function clientVerification(
  bundle: TrustBundle,
  expected?: Identity | readonly Identity[],
): Pick<ConnectionOptions, 'ca' | 'rejectUnauthorized' | 'checkServerIdentity'> {
  return {
    ca: bundle.pem,
    rejectUnauthorized: true,
    checkServerIdentity: (_host: string, cert: PeerCertificate): Error | undefined => {
      try {
        verifyPeerChain(cert as DetailedPeerCertificate, bundle, { expected, role: 'server' });
        return undefined;
      } catch (err) {
        return err instanceof Error ? err : new Error(String(err));
      }
    },
  };
}

/**
 * node:tls server options that demand and verify a client certificate chained to the bundle.
 * After the handshake, call verifyTlsPeer(socket, bundle) to learn (and check) the peer identity.
 */
export function serverVerification(bundle: TrustBundle): Pick<TlsOptions, 'ca' | 'requestCert' | 'rejectUnauthorized'> {
  return { ca: bundle.pem, requestCert: true, rejectUnauthorized: true };
}

/**
 * Verifies the peer of an established TLS socket (either side) and returns its identity. Pass
 * `role` ('client' on the server side) to also check the leaf's extended key usage.
 */
export function verifyTlsPeer(socket: TLSSocket, bundle: TrustBundle, options: PeerVerifyOptions = {}): VerifiedPeer {
  // The leaf alone (a cheap call) finds a peer proven before; the whole chain only when it is new.
  if (socket.authorized) {
    const known = knownPeer(bundle, socket.getPeerX509Certificate()?.fingerprint256, options);
    if (known) return known;
  }
  const peer = socket.getPeerCertificate(true);
  if (!peer || !peer.raw) throw new PeerVerificationError('no-certificate', 'the peer presented no certificate');
  if (!socket.authorized) {
    throw new PeerVerificationError('untrusted', `the TLS layer rejected the peer's chain: ${String(socket.authorizationError ?? 'unknown reason')}`);
  }
  return verifyPeerChain(peer, bundle, options);
}
