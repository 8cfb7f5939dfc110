// The xDS server's health metrics, registered once per prom-client registry (the control plane's
// shared one by default).
import { Counter, Gauge, Histogram, register as defaultRegistry, type Registry } from 'prom-client';

export interface XdsMetrics {
  readonly connectedClients: Gauge<'api'>;
  readonly pushes: Counter<'type_url'>;
  readonly pushedResources: Counter<'type_url'>;
  readonly removedResources: Counter<'type_url'>;
  readonly acks: Counter<'type_url'>;
  readonly nacks: Counter<'type_url'>;
  readonly pushLatency: Histogram<'type_url'>;
  readonly ackLatency: Histogram<'type_url'>;
}

const byRegistry = new WeakMap<Registry, XdsMetrics>();

export function xdsMetrics(registry: Registry = defaultRegistry): XdsMetrics {
  const existing = byRegistry.get(registry);
  if (existing) return existing;
  const registers = [registry];
  const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
  const metrics: XdsMetrics = {
    connectedClients: new Gauge({ name: 'nodemesh_xds_connected_clients', help: 'Open xDS streams', labelNames: ['api'], registers }),
    pushes: new Counter({ name: 'nodemesh_xds_pushes_total', help: 'xDS responses sent', labelNames: ['type_url'], registers }),
    pushedResources: new Counter({
      name: 'nodemesh_xds_pushed_resources_total',
      help: 'Resources sent in xDS responses',
      labelNames: ['type_url'],
      registers,
    }),
    removedResources: new Counter({
      name: 'nodemesh_xds_removed_resources_total',
      help: 'Resource removals sent in delta xDS responses',
      labelNames: ['type_url'],
      registers,
    }),
    acks: new Counter({ name: 'nodemesh_xds_acks_total', help: 'xDS responses acknowledged', labelNames: ['type_url'], registers }),
    nacks: new Counter({ name: 'nodemesh_xds_nacks_total', help: 'xDS responses rejected by the client (NACK)', labelNames: ['type_url'], registers }),
    pushLatency: new Histogram({
      name: 'nodemesh_xds_push_latency_seconds',
      help: 'Time from a configuration change to the xDS response that carries it being written',
      labelNames: ['type_url'],
      buckets: latencyBuckets,
      registers,
    }),
    ackLatency: new Histogram({
      name: 'nodemesh_xds_ack_latency_seconds',
      help: 'Time from an xDS response being written to its ACK or NACK',
      labelNames: ['type_url'],
      buckets: latencyBuckets,
      registers,
    }),
  };
  byRegistry.set(registry, metrics);
  return metrics;
}
