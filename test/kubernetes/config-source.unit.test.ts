// The Kubernetes config source end to end on loopback: the stand-in API server (a test fixture
// speaking the real list/watch protocol), driven by the real kubectl; the control plane's
// KubernetesStore on the real @kubernetes/client-node informers; the real translation and delta
// ADS server; a real gRPC delta ADS client receiving the workload API.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Address, TunnelProtocol } from '../../api/gen/nodemesh/workload/v1/workload';
import { startControlGrpc } from '../../control/grpc';
import { KubernetesStore } from '../../control/kubernetes/store';
import { ReadOnlyStoreError } from '../../control/store/errors';
import type { WatchBatch } from '../../control/store/store';
import { ADDRESS_TYPE_URL } from '../../control/workload/publisher';
import { cleanupAfterEach } from '../support/cleanups';
import { silentLogger } from '../support/control-plane';
import { kubectl, StandInApiServer, startStandIn } from '../support/kube-apiserver';
import { until } from '../support/until';
import { DeltaClient } from '../xds/delta-client';

const cleanup = cleanupAfterEach();

async function cluster(opts: { bookmarkIntervalMs?: number } = {}) {
  const { api, kubeconfig } = await startStandIn(cleanup, 'k8s-source', { bookmarkIntervalMs: opts.bookmarkIntervalMs });
  const applied = await kubectl(kubeconfig, ['apply', '--validate=false', '-f', '-'], DEMO);
  expect(applied.stderr).toBe('');
  api.runPod({ namespace: 'demo', name: 'web-1', node: 'node1', ip: '10.200.1.2', serviceAccount: 'web', labels: { app: 'web' } });
  api.runPod({ namespace: 'demo', name: 'web-2', node: 'node2', ip: '10.200.2.2', serviceAccount: 'web', labels: { app: 'web' } });
  return { api, kubeconfig };
}

async function openStore(kubeconfig: string) {
  const store = await KubernetesStore.open({ kubeconfig, logger: silentLogger, backoff: { initialMs: 50, maxMs: 200 }, syncTimeoutMs: 10_000 });
  cleanup(() => store.close());
  return store;
}

const DEMO = `apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
`;

function workloadsOf(responses: { resources: { name: string; resource?: { value: Uint8Array } }[] }[]) {
  const out = new Map<string, { tunnel: TunnelProtocol; node: string; serviceAccount: string }>();
  for (const r of responses) {
    for (const res of r.resources) {
      const a = Address.decode(res.resource!.value);
      if (a.type?.$case === 'workload')
        out.set(res.name, { tunnel: a.type.value.tunnelProtocol, node: a.type.value.node, serviceAccount: a.type.value.serviceAccount });
    }
  }
  return out;
}

describe('Kubernetes config source (stand-in API server, client-node informers, kubectl)', { timeout: 60_000 }, () => {
  it('a namespace labelled with kubectl shows up enrolled in the workload API; a deleted pod disappears', async () => {
    const { kubeconfig } = await cluster();
    const store = await openStore(kubeconfig);
    const grpcSide = await startControlGrpc({ store, plaintext: { host: '127.0.0.1', port: 0 }, registry: new Registry(), logger: silentLogger });
    cleanup(() => grpcSide.stop());
    const c = new DeltaClient(`127.0.0.1:${grpcSide.ports.plaintext}`);
    cleanup(() => c.close());
    c.send({ typeUrl: ADDRESS_TYPE_URL });
    const first = await c.next(10_000);
    const before = workloadsOf([first]);
    expect(before.get('Workload/demo/web-1')).toEqual({ tunnel: TunnelProtocol.TUNNEL_PROTOCOL_NONE, node: 'node1', serviceAccount: 'web' });
    expect(before.get('Workload/demo/web-2')?.node).toBe('node2');
    expect(first.resources.map((r) => r.name)).toContain('demo/web.demo.svc.cluster.local');
    c.ack(first);

    const labelled = await kubectl(kubeconfig, ['label', 'namespace', 'demo', 'nodemesh.io/dataplane-mode=ambient']);
    expect(labelled.stdout).toContain('namespace/demo labeled');
    const enrolled = await c.next(10_000);
    const after = workloadsOf([enrolled]);
    expect(after.get('Workload/demo/web-1')?.tunnel).toBe(TunnelProtocol.TUNNEL_PROTOCOL_HBONE);
    expect(after.get('Workload/demo/web-2')?.tunnel).toBe(TunnelProtocol.TUNNEL_PROTOCOL_HBONE);
    c.ack(enrolled);

    const deleted = await kubectl(kubeconfig, ['delete', 'pod', 'web-2', '-n', 'demo', '--wait=false']);
    expect(deleted.code).toBe(0);
    const removal = await c.next(10_000);
    expect(removal.removedResources).toEqual(['Workload/demo/web-2']);
    c.ack(removal);
    expect((await kubectl(kubeconfig, ['get', 'pods', '-n', 'demo'])).stdout).not.toContain('web-2');
  });

  it('mirrors pods with node, addresses, service account, labels, UID, QoS class and readiness', async () => {
    const { api, kubeconfig } = await cluster();
    api.runPod({
      namespace: 'demo',
      name: 'slow',
      node: 'node1',
      ip: '10.200.1.9',
      labels: { app: 'slow' },
      ready: false,
      containerPorts: [{ name: 'http', containerPort: 8080 }],
    });
    const store = await openStore(kubeconfig);
    const pod = api.get('v1', 'Pod', 'slow', 'demo')!;
    const w = store.snapshot().get('Workload', 'slow', 'demo')!;
    expect(w.spec).toMatchObject({
      node: 'node1',
      addresses: ['10.200.1.9'],
      serviceAccount: 'default',
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    });
    expect(w.metadata.labels).toEqual({ app: 'slow' });
    expect(w.metadata.uid).toBe(pod.metadata.uid);
    expect(w.metadata.annotations).toEqual({ 'nodemesh.io/pod-uid': pod.metadata.uid, 'nodemesh.io/qos-class': 'BestEffort', 'nodemesh.io/ready': 'false' });
  });

  it('a 410 Expired during the watch relists: the changes made meanwhile arrive once each, nothing else', async () => {
    const { api, kubeconfig } = await cluster();
    const store = await openStore(kubeconfig);
    const batches: WatchBatch[] = [];
    const w = store.watch(store.revision, (b) => batches.push(b));
    cleanup(() => w.close());
    const listsBefore = store.sources().find((s) => s.name === 'pods')!.lists;
    // The API server goes away; while it is down, web-1 is deleted and web-3 created, and its
    // watch history is compacted: the informers' resourceVersion is then too old (410 Expired).
    await api.stop();
    api.delete('v1', 'Pod', 'web-1', 'demo');
    api.runPod({ namespace: 'demo', name: 'web-3', node: 'node1', ip: '10.200.1.3', labels: { app: 'web' } });
    api.compact();
    await api.start();
    await until('the pods informer to relist', () => store.sources().find((s) => s.name === 'pods')!.lists > listsBefore, 10_000);
    await until('web-3 to be mirrored', () => store.snapshot().get('Workload', 'web-3', 'demo') !== undefined, 5000);
    await new Promise((r) => setTimeout(r, 300));
    const events = batches.flatMap((b) => b.events).filter((e) => e.object.kind === 'Workload');
    expect(events.map((e) => `${e.type} ${e.object.metadata.name}`).sort()).toEqual(['ADDED web-3', 'DELETED web-1']);
    expect(
      store
        .snapshot()
        .list('Workload')
        .map((x) => x.metadata.name),
    ).toEqual(['web-2', 'web-3']);
  });

  it('an API server restart resumes the watch from the last resourceVersion (no relist)', async () => {
    const { api, kubeconfig } = await cluster({ bookmarkIntervalMs: 100 });
    const store = await openStore(kubeconfig);
    const pods = () => store.sources().find((s) => s.name === 'pods')!;
    // Bookmarks keep an idle watch's resourceVersion fresh: a write to another kind moves it.
    const nsBefore = api.resourceVersion;
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'other' } });
    expect(api.resourceVersion).not.toBe(nsBefore);
    await until('a bookmark to bring the pods informer to the newest resourceVersion', () => pods().resourceVersion === api.resourceVersion, 5000);
    expect(pods().bookmarks).toBeGreaterThan(0);
    const lists = pods().lists;
    await api.stop();
    api.runPod({ namespace: 'demo', name: 'web-4', node: 'node2', ip: '10.200.2.4', labels: { app: 'web' } });
    await api.start();
    await until('web-4 to be mirrored after the restart', () => store.snapshot().get('Workload', 'web-4', 'demo') !== undefined, 10_000);
    expect(pods().lists).toBe(lists);
    expect(api.requests.some((r) => r.startsWith('GET /api/v1/pods?') && r.includes('watch=true') && r.includes('allowWatchBookmarks=true'))).toBe(true);
  });

  it('refuses config API writes and names kubectl', async () => {
    const { kubeconfig } = await cluster();
    const store = await openStore(kubeconfig);
    await expect(store.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } })).rejects.toThrow(ReadOnlyStoreError);
    await expect(store.delete({ kind: 'Namespace', name: 'demo' })).rejects.toThrow(/kubectl/);
  });

  it('names the API server and what failed when it cannot sync', async () => {
    const api = await new StandInApiServer().start();
    const dir = mkdtempSync(join(tmpdir(), 'nm-k8s-source-'));
    const kubeconfig = api.writeKubeconfig(join(dir, 'kubeconfig'));
    await api.stop();
    cleanup(() => rmSync(dir, { recursive: true, force: true }));
    await expect(KubernetesStore.open({ kubeconfig, logger: silentLogger, backoff: { initialMs: 50, maxMs: 100 }, syncTimeoutMs: 500 })).rejects.toThrow(
      new RegExp(`cannot list .*namespaces.* from the Kubernetes API server at ${api.url.replace(/[.]/g, '\\.')}`),
    );
  });
});
