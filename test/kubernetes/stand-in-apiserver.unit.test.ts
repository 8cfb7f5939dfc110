// The stand-in API server (test/support/kube-apiserver) against the real clients: kubectl 1.32 for
// the verbs a user types, @kubernetes/client-node for the API, and raw HTTPS for the watch
// protocol's details (replay, selector transitions, 410 Expired, bookmarks).
import { request } from 'node:https';
import { describe, expect, it } from 'vitest';
import { kubeModule } from '../../control/kubernetes/client';
import { cleanupAfterEach } from '../support/cleanups';
import { until } from '../support/until';
import { kubectl, StandInApiServer, startStandIn, type StandInApiServerOptions } from '../support/kube-apiserver';

const cleanup = cleanupAfterEach();

const standIn = (opts: StandInApiServerOptions = {}) => startStandIn(cleanup, 'k8s-standin', opts);

/** A watch over raw HTTPS: collects event lines until `stop()`. */
function rawWatch(api: StandInApiServer, path: string) {
  const events: { type: string; object: { kind?: string; code?: number; reason?: string; metadata?: { name?: string; resourceVersion?: string } } }[] = [];
  let ended = false;
  let onConnected: () => void = () => undefined;
  const connected = new Promise<void>((r) => (onConnected = r));
  const req = request(`${api.url}${path}`, { ca: api.caCert, headers: { authorization: `Bearer ${api.token}` } }, (res) => {
    onConnected();
    let buf = '';
    res.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        events.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
    });
    res.on('end', () => (ended = true));
    res.on('error', () => (ended = true));
  });
  req.on('error', () => (ended = true));
  req.end();
  cleanup(() => {
    req.destroy();
  });
  return { events, ended: () => ended, stop: () => req.destroy(), connected };
}

const SVC = (targetPort: number, extra = '') => `apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo${extra}
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: ${targetPort}
---
apiVersion: security.nodemesh.io/v1alpha1
kind: AuthorizationPolicy
metadata:
  name: deny-outside
  namespace: demo
spec:
  action: DENY
  rules:
  - from:
    - source:
        namespaces: [outside]
`;

describe('stand-in API server with kubectl', () => {
  it('kubectl get, apply (create, then configure by patch), label and delete', async () => {
    const { api, kubeconfig } = await standIn();
    const ns = await kubectl(kubeconfig, ['get', 'namespaces']);
    expect(ns.code).toBe(0);
    expect(ns.stdout).toMatch(/^NAME\s+AGE\n/);
    expect(ns.stdout).toContain('kube-system');

    const created = await kubectl(kubeconfig, ['apply', '--validate=false', '-f', '-'], SVC(8080));
    expect(created.stderr).toBe('');
    expect(created.stdout).toBe('namespace/demo created\nservice/web created\nauthorizationpolicy.security.nodemesh.io/deny-outside created\n');
    const svc = api.get('v1', 'Service', 'web', 'demo')!;
    expect((svc.spec as { clusterIP: string }).clusterIP).toBe('10.96.0.10');

    const again = await kubectl(kubeconfig, ['apply', '--validate=false', '-f', '-'], SVC(9090, '\n  labels:\n    tier: front'));
    expect(again.stdout).toBe('namespace/demo unchanged\nservice/web configured\nauthorizationpolicy.security.nodemesh.io/deny-outside unchanged\n');
    const patched = api.get('v1', 'Service', 'web', 'demo')!;
    expect((patched.spec as { ports: unknown[]; clusterIP: string }).ports).toEqual([{ name: 'http', port: 80, targetPort: 9090 }]);
    expect((patched.spec as { clusterIP: string }).clusterIP).toBe('10.96.0.10');
    expect(patched.metadata.labels).toEqual({ tier: 'front' });
    expect(api.requests.some((r) => r.startsWith('PATCH /api/v1/namespaces/demo/services/web'))).toBe(true);

    const labelled = await kubectl(kubeconfig, ['label', 'namespace', 'demo', 'nodemesh.io/dataplane-mode=ambient']);
    expect(labelled.stdout).toBe('namespace/demo labeled\n');
    const shown = await kubectl(kubeconfig, ['get', 'namespace', 'demo', '--show-labels']);
    expect(shown.stdout).toContain('nodemesh.io/dataplane-mode=ambient');
    const byLabel = await kubectl(kubeconfig, ['get', 'namespaces', '-l', 'nodemesh.io/dataplane-mode=ambient', '-o', 'name']);
    expect(byLabel.stdout).toBe('namespace/demo\n');

    const ap = await kubectl(kubeconfig, ['get', 'authorizationpolicies', '-n', 'demo', '-o', 'jsonpath={.items[0].spec.action}']);
    expect(ap.stdout).toBe('DENY');

    const deleted = await kubectl(kubeconfig, ['delete', 'namespace', 'demo', '--wait=false']);
    expect(deleted.stdout).toBe('namespace "demo" deleted\n');
    expect(api.get('v1', 'Service', 'web', 'demo')).toBeUndefined();
    const missing = await kubectl(kubeconfig, ['get', 'service', 'web', '-n', 'demo']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('Error from server (NotFound): namespaces "demo" not found');
  });

  it('refuses requests without the bearer token', async () => {
    const { api } = await standIn();
    const status = await new Promise<number>((resolve, reject) => {
      request(`${api.url}/api/v1/namespaces`, { ca: api.caCert }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
    expect(status).toBe(401);
  });
});

describe('stand-in API server with @kubernetes/client-node', () => {
  it('create, conflict on a stale resourceVersion, merge patch, status subresource, ownerReference GC', async () => {
    const { api, kubeconfig } = await standIn();
    const k8s = await kubeModule();
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfig);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const objects = k8s.KubernetesObjectApi.makeApiClient(kc);

    const sa = await core.createNamespacedServiceAccount({ namespace: 'default', body: { metadata: { name: 'wp' } } });
    expect(sa.metadata?.uid).toBeTruthy();
    const stale = { ...sa, metadata: { ...sa.metadata, labels: { a: 'b' } } };
    await core.replaceNamespacedServiceAccount({ name: 'wp', namespace: 'default', body: stale });
    await expect(
      core.replaceNamespacedServiceAccount({ name: 'wp', namespace: 'default', body: { ...stale, metadata: { ...stale.metadata, labels: { a: 'c' } } } }),
    ).rejects.toMatchObject({ code: 409 });

    const gw: { metadata?: { uid?: string } } = await objects.create({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'waypoint', namespace: 'default' },
      spec: { gatewayClassName: 'nodemesh-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
    } as never);
    await objects.patch(
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'Gateway',
        metadata: { name: 'waypoint', namespace: 'default', labels: { 'nodemesh.io/waypoint-for': 'service' } },
      } as never,
      undefined,
      undefined,
      undefined,
      undefined,
      k8s.PatchStrategy.MergePatch,
    );
    const status = await fetchJson(api, '/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways/waypoint/status', 'PUT', {
      ...api.get('gateway.networking.k8s.io/v1', 'Gateway', 'waypoint', 'default'),
      spec: { gatewayClassName: 'changed-here-is-ignored' },
      status: { conditions: [{ type: 'Programmed', status: 'True' }] },
    });
    expect(status.code).toBe(200);
    const stored = api.get('gateway.networking.k8s.io/v1', 'Gateway', 'waypoint', 'default')!;
    expect(stored.metadata.labels).toEqual({ 'nodemesh.io/waypoint-for': 'service' });
    expect((stored.spec as { gatewayClassName: string }).gatewayClassName).toBe('nodemesh-waypoint');
    expect(stored.status).toEqual({ conditions: [{ type: 'Programmed', status: 'True' }] });

    const owner = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', name: 'waypoint', uid: gw.metadata!.uid!, controller: true };
    await apps.createNamespacedDeployment({
      namespace: 'default',
      body: {
        metadata: { name: 'waypoint', ownerReferences: [owner] },
        spec: {
          selector: { matchLabels: { app: 'wp' } },
          template: { metadata: { labels: { app: 'wp' } }, spec: { containers: [{ name: 'wp', image: 'nodemesh' }] } },
        },
      },
    });
    await objects.delete({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'default' } });
    expect(api.get('apps/v1', 'Deployment', 'waypoint', 'default')).toBeUndefined();
  });
});

async function fetchJson(api: StandInApiServer, path: string, method: string, body: unknown): Promise<{ code: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${api.url}${path}`,
      { method, ca: api.caCert, headers: { authorization: `Bearer ${api.token}`, 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ code: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('stand-in API server watch protocol', () => {
  it('replays from a resourceVersion, turns selector transitions into ADDED/DELETED, sends bookmarks', async () => {
    const { api } = await standIn({ bookmarkIntervalMs: 50 });
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } });
    const from = api.resourceVersion;
    api.runPod({ namespace: 'demo', name: 'a', node: 'n1', ip: '10.0.0.1', labels: { app: 'x' } });
    const w = rawWatch(api, `/api/v1/namespaces/demo/pods?watch=true&resourceVersion=${from}&labelSelector=app%3Dx&allowWatchBookmarks=true`);
    const changes = () => w.events.filter((e) => e.type !== 'BOOKMARK');
    await until('the replayed events', () => changes().length >= 2, 10_000);
    const pod = api.get('v1', 'Pod', 'a', 'demo')!;
    api.update({ ...pod, metadata: { ...pod.metadata, labels: { app: 'y' } } });
    await until('the relabel and a bookmark', () => changes().length >= 3 && w.events.some((e) => e.type === 'BOOKMARK'), 10_000);
    const kinds = w.events.filter((e) => e.type !== 'BOOKMARK').map((e) => `${e.type} ${e.object.metadata?.name}`);
    // create + status update replayed (ADDED, MODIFIED), then the relabel leaves the selector: DELETED.
    expect(kinds).toEqual(['ADDED a', 'MODIFIED a', 'DELETED a']);
    const bookmark = w.events.find((e) => e.type === 'BOOKMARK');
    expect(bookmark?.object.kind).toBe('Pod');
    expect(Number(bookmark?.object.metadata?.resourceVersion)).toBeGreaterThan(Number(from));
  });

  it('answers a too-old resourceVersion with an ERROR event carrying 410 Expired, and ends the watch', async () => {
    const { api } = await standIn();
    const old = api.resourceVersion;
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } });
    const live = rawWatch(api, `/api/v1/namespaces?watch=true&resourceVersion=${api.resourceVersion}`);
    // The live watch is open (its response has begun) before the history is compacted under it.
    await live.connected;
    api.compact();
    const stale = rawWatch(api, `/api/v1/namespaces?watch=true&resourceVersion=${old}`);
    // Polled rather than slept for: the unit tier runs files in parallel on a loaded machine.
    await until('both watches to get their ERROR event and end', () => [live, stale].every((w) => w.events.length > 0 && w.ended()), 10_000);
    for (const w of [live, stale]) {
      expect(w.events.map((e) => [e.type, e.object.code, e.object.reason])).toEqual([['ERROR', 410, 'Expired']]);
      expect(w.ended()).toBe(true);
    }
  });
});
