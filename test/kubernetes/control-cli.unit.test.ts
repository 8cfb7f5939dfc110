// `nodemesh control --config-source kubernetes --kubeconfig …` as a real process against the
// stand-in API server: it syncs, serves what it mirrors through the config API (`nodemesh get`),
// follows kubectl's changes, refuses config API writes naming kubectl, and a bad kubeconfig stops
// it with a message. Needs the build (dist/).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliEntry } from '../../common/paths';
import { cleanupAfterEach } from '../support/cleanups';
import { kubectl, startStandIn } from '../support/kube-apiserver';
import { until } from '../support/until';
import { freePort, run, startControl as start } from './control-process';

const cleanup = cleanupAfterEach();
const startControl = (args: string[], dataDir: string, env: Record<string, string> = {}) => start(cleanup, args, dataDir, env);

// Each test starts one or two control plane processes: on a loaded 2-core machine that takes
// seconds each, so these tests get more than the unit tier's 20 s.
describe('nodemesh control --config-source kubernetes', { timeout: 90_000 }, () => {
  it('mirrors the cluster, follows kubectl, and refuses config API writes', async () => {
    if (!existsSync(cliEntry)) throw new Error(`${cliEntry} is missing: run 'bash scripts/setup.sh' to build first`);
    const { api, dir, kubeconfig } = await startStandIn(cleanup, 'k8s-cli');
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } });
    api.runPod({ namespace: 'demo', name: 'web-1', node: 'node1', ip: '10.200.1.2', labels: { app: 'web' } });
    const { url } = await startControl(['--config-source', 'kubernetes', '--kubeconfig', kubeconfig], join(dir, 'data'));
    const env = { NODEMESH_SERVER: url, NODEMESH_DATA_DIR: join(dir, 'data') };

    const got = await run(['get', 'workloads', '-n', 'demo'], env);
    expect(got.stderr).toBe('');
    expect(got.stdout).toMatch(/web-1\s+.*node1/);

    expect((await kubectl(kubeconfig, ['label', 'namespace', 'demo', 'nodemesh.io/dataplane-mode=ambient'])).code).toBe(0);
    await until(
      'the label to reach the control plane',
      async () => (await run(['get', 'namespace', 'demo', '-o', 'yaml'], env)).stdout.includes('nodemesh.io/dataplane-mode: ambient'),
      10_000,
      200,
    );

    const refused = await run(['apply', '-f', '-'], env, 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: other\n');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/kubectl apply/);
  });

  it('keeps the CA root in a Secret (--ca-secret): a second control plane with an empty data dir has the same root; --ready-port answers', async () => {
    const { api, dir, kubeconfig } = await startStandIn(cleanup, 'k8s-cli');
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'nodemesh-system' } });
    const readyPort = await freePort();
    const env = { POD_NAMESPACE: 'nodemesh-system' };
    const first = await startControl(
      ['--config-source', 'kubernetes', '--kubeconfig', kubeconfig, '--ca-secret', 'nodemesh-ca', '--ready-port', String(readyPort)],
      join(dir, 'a'),
      env,
    );
    const secret = api.get('v1', 'Secret', 'nodemesh-ca', 'nodemesh-system');
    const rootPem = Buffer.from((secret?.data as Record<string, string>)['root-cert.pem'], 'base64').toString();
    expect(rootPem).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect((await fetch(`http://127.0.0.1:${readyPort}/healthz/ready`)).status).toBe(200);
    await until('the root ConfigMap for the node proxies', () => api.get('v1', 'ConfigMap', 'nodemesh-ca-root', 'nodemesh-system') !== undefined, 10_000, 100);
    first.child.kill('SIGTERM');
    await new Promise((r) => first.child.once('exit', r));
    api.delete('v1', 'ConfigMap', 'nodemesh-ca-root', 'nodemesh-system');
    await startControl(['--config-source', 'kubernetes', '--kubeconfig', kubeconfig, '--ca-secret', 'nodemesh-ca'], join(dir, 'b'), env);
    await until('the root ConfigMap again', () => api.get('v1', 'ConfigMap', 'nodemesh-ca-root', 'nodemesh-system') !== undefined, 10_000, 100);
    expect((api.get('v1', 'ConfigMap', 'nodemesh-ca-root', 'nodemesh-system')?.data as Record<string, string>)['root-cert.pem']).toBe(rootPem);
  });

  it('stops with a clear error when the kubeconfig cannot be loaded', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nm-k8s-cli-'));
    cleanup(() => rmSync(dir, { recursive: true, force: true }));
    const res = await run(
      ['control', '--config-source', 'kubernetes', '--kubeconfig', join(dir, 'missing'), '--data-dir', join(dir, 'data'), '--listen', '127.0.0.1:0'],
      {
        NODEMESH_XDS_LISTEN: '127.0.0.1:0',
        NODEMESH_XDS_PLAINTEXT_LISTEN: 'off',
      },
    );
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(`the Kubernetes config source did not start: cannot load the kubeconfig ${join(dir, 'missing')}`);
  });
});
