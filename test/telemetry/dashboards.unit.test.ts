// The Grafana dashboards in grafana/ query only what the proxies and the control plane export:
// every metric a panel or variable names is registered by the code that serves /metrics (node
// proxy, waypoint, control plane), and every label it selects or groups by is one of that
// metric's labels. Checked against the real registries (their definitions, and what they serve for
// a series), so renaming a metric or a label
// without the dashboards fails here.
import { EventEmitter } from 'node:events';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { registerCertificateMetrics } from '../../common/identity/metrics';
import type { CertificateManager } from '../../common/identity/manager';
import { createLogger } from '../../common/log';
import { caMetrics } from '../../control/ca/metrics';
import { configMetrics, createControlRegistry, listenerTimeouts } from '../../control/metrics';
import { xdsMetrics } from '../../control/xds/metrics';
import { NodeProxyTelemetry } from '../../node-proxy/telemetry/metrics';
import { REQUEST_LABELS, WaypointMetrics } from '../../waypoint/telemetry/metrics';
import { dashboardFiles, queriesOf, uses } from '../support/dashboards';

/** metric name -> its label names, from the registries the components serve. */
async function exported(): Promise<Map<string, Set<string>>> {
  const control = createControlRegistry();
  configMetrics(control);
  xdsMetrics(control);
  caMetrics(control);
  listenerTimeouts(control);
  const node = new NodeProxyTelemetry({ registry: new Registry(), accessLog: createLogger('test', 'silent') }).registry;
  // Only the metric definitions are read here; the manager is never asked for certificates.
  registerCertificateMetrics(Object.assign(new EventEmitter(), { status: () => [] }) as unknown as CertificateManager, node);
  // The waypoint's request metrics are collectors of their own: their labels are those of the
  // series they hold, so one series with the waypoint's request label set is made here.
  const waypoint = new WaypointMetrics();
  waypoint.requestSeries.seriesFor('dashboard-test', () => Object.fromEntries(REQUEST_LABELS.map((l) => [l, 'x'])));
  const out = new Map<string, Set<string>>();
  const add = (name: string, labels: Iterable<string>): void => {
    const set = out.get(name) ?? new Set<string>();
    for (const l of labels) set.add(l);
    out.set(name, set);
  };
  for (const registry of [control, node, waypoint.registry]) {
    for (const m of await registry.getMetricsAsJSON()) {
      for (const v of m.values as { labels: Record<string, unknown>; metricName?: string }[]) add(v.metricName ?? m.name, Object.keys(v.labels));
    }
    for (const m of registry.getMetricsAsArray() as unknown as { name: string; labelNames?: string[]; upperBounds?: number[] }[]) {
      add(m.name, m.labelNames ?? []);
      if (m.upperBounds) {
        add(`${m.name}_bucket`, [...(m.labelNames ?? []), 'le']);
        add(`${m.name}_sum`, m.labelNames ?? []);
        add(`${m.name}_count`, m.labelNames ?? []);
      }
    }
  }
  return out;
}

describe('Grafana dashboards', async () => {
  const metrics = await exported();
  const files = dashboardFiles();

  it('there are dashboards for the mesh, a workload, a service, the waypoint and the control plane', () => {
    expect(files.sort()).toEqual(['control-plane.json', 'mesh.json', 'service.json', 'waypoint.json', 'workload.json']);
  });

  for (const file of files) {
    it(`${file}: every query names exported metrics and their labels`, () => {
      const problems: string[] = [];
      for (const q of queriesOf(file)) {
        const u = uses(q.expr);
        expect(u.metrics.length, `${q.where} names no metric: ${q.expr}`).toBeGreaterThan(0);
        for (const m of u.metrics) if (!metrics.has(m)) problems.push(`${q.where}: metric ${m} is not exported`);
        for (const [m, labels] of u.selectors) {
          for (const l of labels) if (metrics.has(m) && !metrics.get(m)!.has(l)) problems.push(`${q.where}: ${m} has no label ${l}`);
        }
        for (const l of u.grouping) {
          if (l === 'le') continue;
          if (!u.metrics.some((m) => metrics.get(m)?.has(l))) problems.push(`${q.where}: no metric of the query has label ${l}`);
        }
      }
      expect(problems).toEqual([]);
    });
  }
});
