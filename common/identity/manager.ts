// Workload certificates on the node proxy: per identity, a fresh key + CSR, a certificate from the
// control plane's CA, kept in memory and renewed at half-life. Failures are retried with
// exponential backoff and jitter; an expired certificate is never handed out (callers get an
// error that says since when and why). Concurrent requests for one identity share one fetch.
//
// Events: 'issued' (WorkloadCertificate), 'failed' ({ spiffeId, error, attempt, retryInMs }),
// 'expired' ({ spiffeId, notAfter }) — for logs and metrics; `status()` lists every identity.
import { EventEmitter } from 'node:events';
import { X509Certificate } from 'node:crypto';
import type { CertificateSource } from './ca-client';
import { createWorkloadCsr } from './keys';
import { formatSpiffeId, type Identity } from './spiffe';
import { trustBundle, verifyPeerChain, type TrustBundle } from './verify';
import { backoffDelay, type BackoffPolicy } from '../backoff';

export type { BackoffPolicy };

export interface WorkloadCertificate {
  readonly identity: Identity;
  readonly spiffeId: string;
  /** PKCS#8 PEM private key (node:tls `key`). */
  readonly privateKeyPem: string;
  /** PEM, leaf first (node:tls `cert`). */
  readonly certChainPem: string;
  readonly trustBundle: TrustBundle;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** When the manager will renew it. */
  readonly renewAt: Date;
}

export interface CertificateManagerOptions {
  readonly source: CertificateSource;
  readonly trustDomain: string;
  /** Requested lifetime; 0 = the CA's default (24 h). */
  readonly ttlSeconds?: number;
  /** Renew after this fraction of the lifetime (default 0.5). */
  readonly renewFraction?: number;
  readonly backoff?: Partial<BackoffPolicy>;
  /** [0,1) random source for jitter (tests). */
  readonly random?: () => number;
}

export class CertificateUnavailableError extends Error {
  constructor(
    readonly spiffeId: string,
    message: string,
    cause?: Error,
  ) {
    super(message, { cause });
    this.name = 'CertificateUnavailableError';
  }
}

export type CertificateState = 'pending' | 'valid' | 'renewing' | 'expired';

export interface CertificateStatus {
  readonly spiffeId: string;
  readonly state: CertificateState;
  readonly notAfter?: Date;
  readonly renewAt?: Date;
  readonly failures: number;
  readonly lastError?: string;
  readonly nextRetryAt?: Date;
}

interface Entry {
  readonly id: Identity;
  readonly spiffeId: string;
  cert?: WorkloadCertificate;
  inflight?: Promise<WorkloadCertificate>;
  timer?: NodeJS.Timeout;
  nextRetryAt?: Date;
  failures: number;
  lastError?: Error;
  expiredReported: boolean;
  waiters: Array<{ resolve: (c: WorkloadCertificate) => void; reject: (e: Error) => void }>;
}

/** Delay before retry number `attempt` (1-based): initial·2^(attempt-1), capped, ± jitter (common/backoff.ts). */
export function retryDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  return backoffDelay(attempt - 1, policy, random);
}

export class CertificateManager extends EventEmitter {
  private readonly entries = new Map<string, Entry>();
  private readonly backoff: BackoffPolicy;
  private readonly renewFraction: number;
  private readonly random: () => number;
  private closed = false;

  constructor(private readonly options: CertificateManagerOptions) {
    super();
    this.backoff = { initialMs: 1000, maxMs: 60_000, jitter: 0.2, ...options.backoff };
    this.renewFraction = options.renewFraction ?? 0.5;
    this.random = options.random ?? Math.random;
  }

  private entry(id: Identity): Entry {
    if (this.closed) throw new Error('the certificate manager is closed');
    if (id.trustDomain !== this.options.trustDomain) {
      throw new CertificateUnavailableError(formatSpiffeId(id), `${formatSpiffeId(id)} is not in this mesh's trust domain '${this.options.trustDomain}'`);
    }
    const key = formatSpiffeId(id);
    let e = this.entries.get(key);
    if (!e) {
      e = { id, spiffeId: key, failures: 0, expiredReported: false, waiters: [] };
      this.entries.set(key, e);
    }
    return e;
  }

  private valid(e: Entry): WorkloadCertificate | undefined {
    const c = e.cert;
    if (!c) return undefined;
    if (Date.now() < c.notAfter.getTime()) return c;
    if (!e.expiredReported) {
      e.expiredReported = true;
      this.emit('expired', { spiffeId: e.spiffeId, notAfter: c.notAfter });
    }
    return undefined;
  }

  /** The identity's certificate if one is valid right now (never an expired one). */
  current(id: Identity): WorkloadCertificate | undefined {
    const e = this.entries.get(formatSpiffeId(id));
    return e && this.valid(e);
  }

  /**
   * A valid certificate for `id`: the cached one, or the result of one fetch shared by all
   * concurrent callers. Rejects with CertificateUnavailableError when the fetch fails (and keeps
   * retrying in the background).
   */
  get(id: Identity): Promise<WorkloadCertificate> {
    const e = this.entry(id);
    const c = this.valid(e);
    if (c) return Promise.resolve(c);
    return this.fetch(e);
  }

  /** Resolves once a valid certificate for `id` exists, however many retries that takes. */
  ready(id: Identity): Promise<WorkloadCertificate> {
    const e = this.entry(id);
    const c = this.valid(e);
    if (c) return Promise.resolve(c);
    const p = new Promise<WorkloadCertificate>((resolve, reject) => e.waiters.push({ resolve, reject }));
    if (!e.inflight && !e.timer) this.fetch(e).catch(() => undefined); // failures schedule retries
    return p;
  }

  /** Stops renewing `id` and drops its key and certificate (the workload left this node). */
  forget(id: Identity): void {
    const key = formatSpiffeId(id);
    const e = this.entries.get(key);
    if (!e) return;
    if (e.timer) clearTimeout(e.timer);
    this.entries.delete(key);
    for (const w of e.waiters.splice(0)) w.reject(new CertificateUnavailableError(key, `${key} is no longer managed on this node`));
  }

  status(): CertificateStatus[] {
    return [...this.entries.values()]
      .map((e) => {
        const c = this.valid(e);
        const state: CertificateState = c ? (e.failures > 0 || e.inflight ? 'renewing' : 'valid') : e.cert ? 'expired' : 'pending';
        return {
          spiffeId: e.spiffeId,
          state,
          notAfter: e.cert?.notAfter,
          renewAt: e.cert?.renewAt,
          failures: e.failures,
          lastError: e.lastError?.message,
          nextRetryAt: e.nextRetryAt,
        };
      })
      .sort((a, b) => (a.spiffeId < b.spiffeId ? -1 : 1));
  }

  close(): void {
    this.closed = true;
    for (const e of this.entries.values()) {
      if (e.timer) clearTimeout(e.timer);
      for (const w of e.waiters.splice(0)) w.reject(new CertificateUnavailableError(e.spiffeId, 'the certificate manager was closed'));
    }
    this.entries.clear();
  }

  private schedule(e: Entry, delayMs: number): void {
    if (e.timer) clearTimeout(e.timer);
    e.timer = setTimeout(
      () => {
        e.timer = undefined;
        if (this.entries.get(e.spiffeId) === e) this.fetch(e).catch(() => undefined);
      },
      Math.max(0, delayMs),
    );
    e.timer.unref();
  }

  private fetch(e: Entry): Promise<WorkloadCertificate> {
    if (e.inflight) return e.inflight;
    if (e.timer) {
      clearTimeout(e.timer);
      e.timer = undefined;
    }
    e.nextRetryAt = undefined;
    const p = this.request(e).then(
      (cert) => {
        e.inflight = undefined;
        if (this.entries.get(e.spiffeId) !== e) return cert;
        e.cert = cert;
        e.failures = 0;
        e.lastError = undefined;
        e.expiredReported = false;
        this.schedule(e, cert.renewAt.getTime() - Date.now());
        for (const w of e.waiters.splice(0)) w.resolve(cert);
        this.emit('issued', cert);
        return cert;
      },
      (err: unknown) => {
        e.inflight = undefined;
        const cause = err instanceof Error ? err : new Error(String(err));
        if (this.entries.get(e.spiffeId) === e) {
          e.failures += 1;
          e.lastError = cause;
          const still = e.cert && Date.now() < e.cert.notAfter.getTime() ? e.cert : undefined;
          // Retry with backoff, but never later than the current certificate's expiry.
          let delay = retryDelay(e.failures, this.backoff, this.random);
          if (still) delay = Math.min(delay, Math.max(0, still.notAfter.getTime() - Date.now()));
          e.nextRetryAt = new Date(Date.now() + delay);
          this.schedule(e, delay);
          this.emit('failed', { spiffeId: e.spiffeId, error: cause, attempt: e.failures, retryInMs: delay });
        }
        const expired = e.cert && !(Date.now() < e.cert.notAfter.getTime());
        throw new CertificateUnavailableError(
          e.spiffeId,
          expired
            ? `the certificate for ${e.spiffeId} expired at ${e.cert?.notAfter.toISOString()} and renewal keeps failing (${e.failures} attempts): ${cause.message}`
            : `cannot obtain a certificate for ${e.spiffeId}: ${cause.message}`,
          cause,
        );
      },
    );
    e.inflight = p;
    return p;
  }

  private async request(e: Entry): Promise<WorkloadCertificate> {
    const { csrPem, key } = await createWorkloadCsr(e.id);
    const issued = await this.options.source.createCertificate(csrPem, this.options.ttlSeconds ?? 0);
    const bundle = trustBundle(this.options.trustDomain, [...issued.trustBundlePem]);
    // Check what came back: it chains to the bundle, names us, is valid now, and fits our key.
    const peer = verifyPeerChain([...issued.certChainPem], bundle, { expected: e.id });
    if (!peer.leaf.checkPrivateKey(key.privateKey)) throw new Error('the CA returned a certificate for another key than the one in the CSR');
    const notBefore = new Date(new X509Certificate(issued.certChainPem[0] as string).validFrom);
    const lifetime = peer.notAfter.getTime() - notBefore.getTime();
    const renewAt = new Date(notBefore.getTime() + lifetime * this.renewFraction);
    return {
      identity: e.id,
      spiffeId: e.spiffeId,
      privateKeyPem: key.privateKeyPem,
      certChainPem: issued.certChainPem.join(''),
      trustBundle: bundle,
      notBefore,
      notAfter: peer.notAfter,
      renewAt,
    };
  }
}
