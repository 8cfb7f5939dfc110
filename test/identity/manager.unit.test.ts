// The node proxy's certificate manager against a real in-process CA. Only the clock is fake
// (setTimeout and Date), so renewal at half-life, backoff and expiry can be walked through in
// milliseconds; keys, CSRs, signatures and chain checks are all real.
import { once } from 'node:events';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CertificateSource, IssuedChain } from '../../common/identity/ca-client';
import { createWorkloadCsr } from '../../common/identity/keys';
import { CertificateManager, CertificateUnavailableError, retryDelay as backoffDelay, type WorkloadCertificate } from '../../common/identity/manager';
import { identity } from '../../common/identity/spiffe';
import { registerCertificateMetrics } from '../../common/identity/metrics';
import { verifyPeerChain } from '../../common/identity/verify';
import { Registry } from 'prom-client';
import { CertificateAuthority, requestedIdentity } from '../../control/ca/authority';
import { openTestCa, type TestCa } from '../support/control-plane';

/** The real CA behind the CertificateSource interface, with a switch that simulates an outage. */
class InProcessCa implements CertificateSource {
  calls = 0;
  down = false;
  constructor(readonly ca: CertificateAuthority) {}
  async createCertificate(csrPem: string, ttlSeconds: number): Promise<IssuedChain> {
    this.calls += 1;
    if (this.down) throw new Error('connect ECONNREFUSED 10.199.0.1:15012');
    const issued = await this.ca.issue({ csrPem, identity: requestedIdentity(csrPem), ttlSeconds });
    return { certChainPem: issued.certChainPem, trustBundlePem: issued.trustBundlePem };
  }
}

const web = identity('shop', 'web');
const TTL = 600; // seconds; the CA backdates by 60 s, so a leaf lives 660 s and is renewed after 330 s
let testCa: TestCa;
let ca: CertificateAuthority;
let source: InProcessCa;
let manager: CertificateManager;

beforeAll(async () => {
  testCa = await openTestCa('mgr');
  ca = testCa.ca;
});
afterAll(() => testCa?.remove());

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  source = new InProcessCa(ca);
  manager = new CertificateManager({ source, trustDomain: 'cluster.local', ttlSeconds: TTL, random: () => 0.5 });
});
afterEach(() => {
  manager.close();
  vi.useRealTimers();
});

function nextEvent<T>(name: string): Promise<T> {
  return once(manager, name).then(([v]) => v as T);
}

describe('CertificateManager', () => {
  it('ready() resolves with a valid certificate, key and bundle that verify', async () => {
    const cert = await manager.ready(web);
    expect(cert.spiffeId).toBe('spiffe://cluster.local/ns/shop/sa/web');
    expect(verifyPeerChain([cert.certChainPem], cert.trustBundle, { expected: web }).identity).toEqual(web);
    expect(cert.notAfter.getTime() - cert.notBefore.getTime()).toBe((TTL + 60) * 1000);
    expect(cert.renewAt.getTime()).toBe(cert.notBefore.getTime() + ((TTL + 60) * 1000) / 2);
    expect(manager.current(web)).toBe(cert);
    expect(manager.status()).toEqual([expect.objectContaining({ spiffeId: cert.spiffeId, state: 'valid', failures: 0 })]);
  });

  it('coalesces concurrent requests for one identity into one CA call', async () => {
    const all = await Promise.all([manager.get(web), manager.get(web), manager.ready(web), manager.get(web), manager.ready(web)]);
    expect(source.calls).toBe(1);
    for (const c of all) expect(c).toBe(all[0]);
    const other = await manager.get(identity('shop', 'db'));
    expect(source.calls).toBe(2);
    expect(other.spiffeId).toBe('spiffe://cluster.local/ns/shop/sa/db');
  });

  it('renews at half-life with a new key, not before', async () => {
    const first = await manager.ready(web);
    const untilRenew = first.renewAt.getTime() - Date.now();
    await vi.advanceTimersByTimeAsync(untilRenew - 1);
    expect(source.calls).toBe(1);
    const issued = nextEvent<WorkloadCertificate>('issued');
    await vi.advanceTimersByTimeAsync(1);
    const second = await issued;
    expect(source.calls).toBe(2);
    expect(second.notAfter.getTime()).toBeGreaterThan(first.notAfter.getTime());
    expect(second.privateKeyPem).not.toBe(first.privateKeyPem);
    expect(manager.current(web)).toBe(second);
  });

  it('retries a failed renewal with exponential backoff and keeps serving the still-valid certificate', async () => {
    const first = await manager.ready(web);
    source.down = true;
    const delays: number[] = [];
    let failed = nextEvent<{ attempt: number; retryInMs: number }>('failed');
    await vi.advanceTimersByTimeAsync(first.renewAt.getTime() - Date.now());
    for (let attempt = 1; attempt <= 5; attempt++) {
      const f = await failed;
      expect(f.attempt).toBe(attempt);
      delays.push(f.retryInMs);
      expect(manager.current(web)).toBe(first); // still valid: still served
      const callsBefore = source.calls;
      failed = nextEvent('failed');
      await vi.advanceTimersByTimeAsync(f.retryInMs - 1);
      expect(source.calls).toBe(callsBefore); // not early
      await vi.advanceTimersByTimeAsync(1);
    }
    await failed;
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000]);
    expect(manager.status()[0]).toEqual(expect.objectContaining({ state: 'renewing', failures: 6, lastError: expect.stringContaining('ECONNREFUSED') }));

    // The CA comes back: the next retry succeeds and the failure count resets.
    source.down = false;
    const issued = nextEvent<WorkloadCertificate>('issued');
    await vi.advanceTimersByTimeAsync(32_000);
    const renewed = await issued;
    expect(renewed.notAfter.getTime()).toBeGreaterThan(first.notAfter.getTime());
    expect(manager.status()[0]).toEqual(expect.objectContaining({ state: 'valid', failures: 0 }));
  });

  it('never returns an expired certificate: past expiry callers get a clear error until renewal succeeds', async () => {
    const first = await manager.ready(web);
    source.down = true;
    const expired = nextEvent<{ spiffeId: string; notAfter: Date }>('expired');
    await vi.advanceTimersByTimeAsync(first.notAfter.getTime() - Date.now() + 1);
    expect(manager.current(web)).toBeUndefined();
    const err = await manager.get(web).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CertificateUnavailableError);
    expect((err as Error).message).toMatch(
      /the certificate for spiffe:\/\/cluster.local\/ns\/shop\/sa\/web expired at .* and renewal keeps failing \(\d+ attempts\): connect ECONNREFUSED/,
    );
    expect((await expired).notAfter).toEqual(first.notAfter);
    expect(manager.status()[0]?.state).toBe('expired');

    // Waiters on ready() are released by the first successful renewal.
    const waiting = manager.ready(web);
    source.down = false;
    await vi.advanceTimersByTimeAsync(60_000);
    const fresh = await waiting;
    expect(fresh.notAfter.getTime()).toBeGreaterThan(Date.now());
    expect(manager.current(web)).toBe(fresh);
  });

  it('a first fetch that fails rejects get() with the cause, and ready() waits through retries', async () => {
    source.down = true;
    await expect(manager.get(web)).rejects.toThrow(/cannot obtain a certificate for spiffe:\/\/cluster.local\/ns\/shop\/sa\/web: connect ECONNREFUSED/);
    const waiting = manager.ready(web);
    let settled = false;
    void waiting.then(() => (settled = true));
    await vi.advanceTimersByTimeAsync(500);
    expect(settled).toBe(false);
    source.down = false;
    await vi.advanceTimersByTimeAsync(2000);
    expect((await waiting).spiffeId).toBe('spiffe://cluster.local/ns/shop/sa/web');
  });

  it('refuses what the CA returns when it is not the identity asked for', async () => {
    const other = await createWorkloadCsr(identity('shop', 'db'));
    const wrong: CertificateSource = {
      createCertificate: async () => {
        const issued = await ca.issue({ csrPem: other.csrPem, identity: identity('shop', 'db') });
        return { certChainPem: issued.certChainPem, trustBundlePem: issued.trustBundlePem };
      },
    };
    const m = new CertificateManager({ source: wrong, trustDomain: 'cluster.local' });
    try {
      await expect(m.get(web)).rejects.toThrow(
        /the peer is spiffe:\/\/cluster.local\/ns\/shop\/sa\/db, but spiffe:\/\/cluster.local\/ns\/shop\/sa\/web was expected/,
      );
      expect(m.current(web)).toBeUndefined();
    } finally {
      m.close();
    }
  });

  it('exposes expiry, state and failures as Prometheus metrics', async () => {
    const registry = new Registry();
    registerCertificateMetrics(manager, registry);
    const cert = await manager.ready(web);
    source.down = true;
    await expect(manager.get(identity('shop', 'db'))).rejects.toThrow();
    const text = await registry.metrics();
    expect(text).toContain(
      `nodemesh_workload_certificate_expiry_timestamp_seconds{spiffe_id="spiffe://cluster.local/ns/shop/sa/web"} ${cert.notAfter.getTime() / 1000}`,
    );
    expect(text).toMatch(/nodemesh_workload_certificates\{state="valid"\} 1/);
    expect(text).toMatch(/nodemesh_workload_certificates\{state="pending"\} 1/);
    expect(text).toMatch(/nodemesh_workload_certificate_request_failures_total 1/);
  });

  it('refuses identities of another trust domain', () => {
    expect(() => manager.get(identity('shop', 'web', 'other.td'))).toThrow(/not in this mesh's trust domain 'cluster.local'/);
  });
});

describe('backoffDelay', () => {
  it('doubles from the initial delay up to the cap, with bounded jitter', () => {
    const p = { initialMs: 1000, maxMs: 60_000, jitter: 0.2 };
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(n, p, () => 0.5))).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
    expect(backoffDelay(3, p, () => 0)).toBe(3200);
    expect(backoffDelay(3, p, () => 0.999999)).toBe(4800);
  });
});
