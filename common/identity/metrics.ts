// Prometheus view of a node proxy's workload certificates: when each expires, and how often
// renewal failed. Values are read from the manager at scrape time.
import { Counter, Gauge, register as defaultRegistry, type Registry } from '../prom';
import type { CertificateManager } from './manager';

/** Registers the gauges and counter for `manager` on `registry` (once per registry). */
export function registerCertificateMetrics(manager: CertificateManager, registry: Registry = defaultRegistry): void {
  if (registry.getSingleMetric('nodemesh_workload_certificates')) {
    throw new Error('workload certificate metrics are already registered on this registry (one CertificateManager per registry)');
  }
  new Gauge({
    name: 'nodemesh_workload_certificate_expiry_timestamp_seconds',
    help: 'When the current workload certificate of an identity expires (Unix time); absent while none was issued',
    labelNames: ['spiffe_id'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of manager.status()) if (s.notAfter) this.set({ spiffe_id: s.spiffeId }, s.notAfter.getTime() / 1000);
    },
  });
  new Gauge({
    name: 'nodemesh_workload_certificates',
    help: 'Workload identities managed on this node, by state (pending, valid, renewing, expired)',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      const counts: Record<string, number> = { pending: 0, valid: 0, renewing: 0, expired: 0 };
      for (const s of manager.status()) counts[s.state] = (counts[s.state] ?? 0) + 1;
      for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
    },
  });
  const failures = new Counter({
    name: 'nodemesh_workload_certificate_request_failures_total',
    help: 'Failed certificate requests to the control plane (first issue or renewal)',
    registers: [registry],
  });
  manager.on('failed', () => failures.inc());
}
