// The CA's metrics: certificates issued and requests refused (by reason).
import { Counter, register as defaultRegistry, type Registry } from 'prom-client';

export type RefusalReason = 'unauthenticated' | 'permission_denied' | 'invalid_argument' | 'internal';

export interface CaMetrics {
  readonly issued: Counter<'node'>;
  readonly refused: Counter<'reason'>;
}

const byRegistry = new WeakMap<Registry, CaMetrics>();

export function caMetrics(registry: Registry = defaultRegistry): CaMetrics {
  const existing = byRegistry.get(registry);
  if (existing) return existing;
  const metrics: CaMetrics = {
    issued: new Counter({
      name: 'nodemesh_ca_certificates_issued_total',
      help: 'Workload certificates signed by the CA, by requesting node',
      labelNames: ['node'],
      registers: [registry],
    }),
    refused: new Counter({
      name: 'nodemesh_ca_certificate_refusals_total',
      help: 'Certificate requests the CA refused, by reason (unauthenticated, permission_denied, invalid_argument, internal)',
      labelNames: ['reason'],
      registers: [registry],
    }),
  };
  byRegistry.set(registry, metrics);
  return metrics;
}
