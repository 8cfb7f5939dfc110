// The control plane's Prometheus registry. One registry per ControlPlane, served on
// 15014 /metrics; every component registers its metrics into it (the xDS server with
// `xdsMetrics(cp.registry)`, the CA with `caMetrics(cp.registry)`), so tests can run several
// control planes in one process without name clashes.
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

export function createControlRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'nodemesh_control_' });
  return registry;
}

export interface ConfigMetrics {
  /** Revision of the newest committed config write. */
  readonly revision: Gauge;
  /** Config writes by operation (apply, delete) and result (ok, invalid, conflict, notfound, error). */
  readonly writes: Counter<'operation' | 'result'>;
  /** Open watch streams on the config API. */
  readonly watchers: Gauge;
  /** Config API requests by method and status code. */
  readonly requests: Counter<'method' | 'code'>;
}

const byRegistry = new WeakMap<Registry, ConfigMetrics>();

export function configMetrics(registry: Registry): ConfigMetrics {
  const existing = byRegistry.get(registry);
  if (existing) return existing;
  const registers = [registry];
  const m: ConfigMetrics = {
    revision: new Gauge({ name: 'nodemesh_config_revision', help: 'Revision of the newest committed config write', registers }),
    writes: new Counter({
      name: 'nodemesh_config_writes_total',
      help: 'Config writes by operation and result',
      labelNames: ['operation', 'result'],
      registers,
    }),
    watchers: new Gauge({ name: 'nodemesh_config_watchers', help: 'Open watch streams on the config API', registers }),
    requests: new Counter({
      name: 'nodemesh_config_api_requests_total',
      help: 'Config API requests by method and status code',
      labelNames: ['method', 'code'],
      registers,
    }),
  };
  byRegistry.set(registry, m);
  return m;
}

/** Connections a listener closed because a peer was too slow or idle, by listener and kind. */
export { listenerTimeouts, type ListenerTimeouts } from '../common/listener-timeouts';
