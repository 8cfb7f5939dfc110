// What Prometheus sees: the control plane pod's prometheus.io/* annotations (as the chart and
// `nodemesh install --dry-run` print them — helm-template.unit.test.ts keeps those equal) point at
// a port and scheme that a real `nodemesh control`, started with the very container args the chart
// gives it, answers with its metrics; the config API port, HTTPS off loopback, would not.
// The chart's fixed ports are mapped to free ones (a shared machine), the same map for args and
// annotations. Needs the build (dist/).
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderInstall } from '../../helm/install/manifests';
import { resolveValues } from '../../helm/install/values';
import { cleanupAfterEach } from '../support/cleanups';
import { startStandIn } from '../support/kube-apiserver';
import { until } from '../support/until';
import { freePort, run, startControl } from './control-process';

const cleanup = cleanupAfterEach();

interface ControlPod {
  metadata: { annotations?: Record<string, string> };
  spec: { containers: { name: string; args: string[]; ports: { name: string; containerPort: number }[] }[] };
}

function controlPod(): ControlPod {
  const ms = renderInstall(resolveValues({}), { name: 'nodemesh', namespace: 'nodemesh-system' });
  const d = ms.find((m) => m.kind === 'Deployment' && m.metadata.name === 'nodemesh-control') as unknown as { spec: { template: ControlPod } };
  return d.spec.template;
}

/** A raw HTTP/1.1 GET: the status, or the error when the peer does not speak plain HTTP. */
function plainGet(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, timeout: 5_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('the chart scrapes a control plane port that serves metrics', { timeout: 90_000 }, () => {
  it('annotations name the plain-HTTP metrics listener that `nodemesh control` opens with the chart args', async () => {
    const pod = controlPod();
    const a = pod.metadata.annotations ?? {};
    expect(a['prometheus.io/scrape']).toBe('true');
    expect(a['prometheus.io/scheme'] ?? 'http').toBe('http');
    const port = Number(a['prometheus.io/port']);
    const path = a['prometheus.io/path'] ?? '/metrics';
    const container = pod.spec.containers.find((c) => c.name === 'control');
    if (!container) throw new Error('no control container');
    // The annotated port is one the container declares and one its args open.
    expect(container.ports.map((p) => p.containerPort)).toContain(port);
    expect(container.args).toContain(`--metrics-port=${port}`);

    const { api, dir, kubeconfig } = await startStandIn(cleanup, 'k8s-metrics');
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'nodemesh-system' } });
    const mapped = new Map<number, number>();
    for (const p of [15014, 15021, port]) mapped.set(p, await freePort());
    const args = container.args
      .slice(1)
      .map((arg) => arg.replace(/=:?(\d+)$/, (m, n: string) => (mapped.has(Number(n)) ? m.replace(n, String(mapped.get(Number(n)))) : m)));
    expect(args).toContain(`--metrics-port=${mapped.get(port)}`);
    expect(args).toContain(`--listen=:${mapped.get(15014)}`);
    await startControl(cleanup, [...args, `--kubeconfig=${kubeconfig}`], join(dir, 'data'), { POD_NAMESPACE: 'nodemesh-system' });

    const scrapePort = mapped.get(port) as number;
    await until(
      'the metrics listener',
      () =>
        plainGet(scrapePort, path).then(
          () => true,
          () => false,
        ),
      10_000,
      100,
    );
    const got = await plainGet(scrapePort, path);
    expect(got.status).toBe(200);
    expect(got.body).toMatch(/^nodemesh_config_revision \d+$/m);
    expect(got.body).toContain('nodemesh_control_process_cpu_seconds_total');
    // Metrics and nothing else: no config, no other path, no writes.
    expect((await plainGet(scrapePort, '/v1/namespaces')).status).toBe(404);
    expect((await plainGet(scrapePort, path, 'POST')).status).toBe(405);
    // What the chart scraped before: the config API port is HTTPS off loopback; plain HTTP fails there.
    await expect(plainGet(mapped.get(15014) as number, '/metrics')).rejects.toThrow();
  });

  it('refuses a --metrics-port that is not a port', async () => {
    const res = await run(['control', '--metrics-port', 'http', '--listen', '127.0.0.1:0']);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('--metrics-port must be a port number, got "http"');
  });
});
