// A Service's selector changed with kubectl: the endpoints mirrored from its EndpointSlices (outside
// the mesh: here a host-network pod) are re-labelled with the new selector, and Service membership
// in the workload API follows — mesh pods the new selector picks join, those it drops leave —
// without any pod of the namespace changing. Stand-in API server, real kubectl, real client-node
// informers, the real translation and delta ADS server, a real gRPC delta ADS client.
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Address } from '../../api/gen/nodemesh/workload/v1/workload';
import { startControlGrpc } from '../../control/grpc';
import { KubernetesStore } from '../../control/kubernetes/store';
import { ADDRESS_TYPE_URL } from '../../control/workload/publisher';
import { cleanupAfterEach } from '../support/cleanups';
import { silentLogger } from '../support/control-plane';
import { kubectl, startStandIn } from '../support/kube-apiserver';
import { DeltaClient } from '../xds/delta-client';

const cleanup = cleanupAfterEach();

const SERVICE = `apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: demo
spec:
  selector:
    app: db-v1
  ports:
  - name: tcp
    port: 5432
`;

const SVC = 'demo/db.demo.svc.cluster.local';

/** Workload name -> the Services (by their resource name) it is a member of, from delta responses. */
function membership(
  responses: { resources: { name: string; resource?: { value: Uint8Array } }[]; removedResources: string[] }[],
  into = new Map<string, string[]>(),
) {
  for (const r of responses) {
    for (const name of r.removedResources) into.delete(name);
    for (const res of r.resources) {
      const a = Address.decode(res.resource!.value);
      if (a.type?.$case === 'workload') into.set(res.name, Object.keys(a.type.value.services).sort());
    }
  }
  return into;
}

describe('a Service selector change (stand-in API server, kubectl, client-node informers, delta ADS)', { timeout: 60_000 }, () => {
  it('re-labels EndpointSlice workloads and re-derives Service membership without any pod changing', async () => {
    const { api, kubeconfig } = await startStandIn(cleanup, 'k8s-selector');
    expect((await kubectl(kubeconfig, ['apply', '--validate=false', '-f', '-'], SERVICE)).code).toBe(0);
    api.runPod({ namespace: 'demo', name: 'db-old', node: 'node1', ip: '10.200.1.5', labels: { app: 'db-v1' } });
    api.runPod({ namespace: 'demo', name: 'db-new', node: 'node2', ip: '10.200.2.5', labels: { app: 'db-v2' } });
    // An endpoint of the Service that is not a mesh pod (a host-network database on node3).
    api.create({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'db-abcde', namespace: 'demo', labels: { 'kubernetes.io/service-name': 'db' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['192.168.0.30'], conditions: { ready: true }, nodeName: 'node3' }],
      ports: [{ name: 'tcp', port: 5432, protocol: 'TCP' }],
    });
    const store = await KubernetesStore.open({ kubeconfig, logger: silentLogger, backoff: { initialMs: 50, maxMs: 200 }, syncTimeoutMs: 10_000 });
    cleanup(() => store.close());
    const grpcSide = await startControlGrpc({ store, plaintext: { host: '127.0.0.1', port: 0 }, registry: new Registry(), logger: silentLogger });
    cleanup(() => grpcSide.stop());
    const c = new DeltaClient(`127.0.0.1:${grpcSide.ports.plaintext}`);
    cleanup(() => c.close());
    c.send({ typeUrl: ADDRESS_TYPE_URL });
    const first = await c.next(10_000);
    c.ack(first);
    const members = membership([first]);
    expect(members.get('Workload/demo/db-old')).toEqual([SVC]);
    expect(members.get('Workload/demo/db-new')).toEqual([]);
    expect(members.get('Workload/demo/db-abcde-ep0')).toEqual([SVC]);
    expect(store.snapshot().get('Workload', 'db-abcde-ep0', 'demo')?.metadata.labels).toMatchObject({ app: 'db-v1' });

    const revision = store.revision;
    const podVersions = () => ['db-old', 'db-new'].map((n) => api.get('v1', 'Pod', n, 'demo')?.metadata.resourceVersion);
    const podsBefore = podVersions();
    const patched = await kubectl(kubeconfig, ['patch', 'service', 'db', '-n', 'demo', '--type=merge', '-p', '{"spec":{"selector":{"app":"db-v2"}}}']);
    expect(patched.stderr).toBe('');
    // One revision: the Service and the endpoint's labels together, no pod touched.
    for (let i = 0; i < 5 && !(members.get('Workload/demo/db-new') ?? []).length; i++) {
      const r = await c.next(10_000);
      c.ack(r);
      membership([r], members);
    }
    expect(members.get('Workload/demo/db-new')).toEqual([SVC]);
    expect(members.get('Workload/demo/db-old')).toEqual([]);
    expect(members.get('Workload/demo/db-abcde-ep0')).toEqual([SVC]);
    expect(store.revision).toBe(revision + 1);
    const ep = store.snapshot().get('Workload', 'db-abcde-ep0', 'demo');
    expect(ep?.metadata.labels).toEqual({ app: 'db-v2', 'kubernetes.io/service-name': 'db', 'nodemesh.io/dataplane-mode': 'none' });
    expect(podVersions()).toEqual(podsBefore);
  });
});
