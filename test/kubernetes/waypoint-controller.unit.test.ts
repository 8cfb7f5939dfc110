// The waypoint controller against the stand-in API server: a Gateway created with kubectl gets a
// ServiceAccount, Deployment and Service owned by it, the mesh root ConfigMap, and its status
// (Accepted; Programmed only once its Deployment has an available replica; address) written
// through the API; the workload API then resolves the
// waypoint through that Service; deleting the Gateway removes what it owned (the stand-in's
// ownerReference garbage collection).
import { describe, expect, it } from 'vitest';
import { KubernetesStore } from '../../control/kubernetes/store';
import { WaypointController } from '../../control/kubernetes/waypoints/controller';
import { translateWorkloadApi } from '../../control/workload/translate';
import { cleanupAfterEach } from '../support/cleanups';
import { silentLogger } from '../support/control-plane';
import { kubectl, startStandIn } from '../support/kube-apiserver';
import { until } from '../support/until';

const cleanup = cleanupAfterEach();

const GATEWAY = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: demo
  labels:
    nodemesh.io/waypoint-for: service
spec:
  gatewayClassName: nodemesh-waypoint
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
`;

async function setup() {
  const { api, kubeconfig } = await startStandIn(cleanup, 'k8s-waypoints');
  for (const name of ['nodemesh-system', 'demo']) api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  api.create({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'backend', namespace: 'demo', labels: { 'nodemesh.io/use-waypoint': 'waypoint' } },
    spec: { selector: { app: 'backend' }, ports: [{ name: 'http', port: 80 }] },
  });
  const store = await KubernetesStore.open({ kubeconfig, logger: silentLogger, syncTimeoutMs: 10_000 });
  cleanup(() => store.close());
  const controller = new WaypointController({
    store,
    proxy: 'nodemesh',
    image: 'nodemesh/nodemesh:test',
    envoyImage: 'envoyproxy/envoy:test',
    controlAddress: 'nodemesh-control.nodemesh-system.svc:15012',
    trustDomain: 'cluster.local',
    ownNamespace: 'nodemesh-system',
    rootPem: async () => '-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n',
    logger: silentLogger,
  });
  await controller.start();
  cleanup(() => controller.stop());
  return { api, kubeconfig, store, controller };
}

describe('waypoint controller (stand-in API server, kubectl)', { timeout: 60_000 }, () => {
  it('creates the waypoint for a Gateway, writes its status, and the deletion of the Gateway removes it', async () => {
    const { api, kubeconfig, store, controller } = await setup();
    const applied = await kubectl(kubeconfig, ['apply', '--validate=false', '-f', '-'], GATEWAY);
    expect(applied.stdout).toBe('gateway.gateway.networking.k8s.io/waypoint created\n');
    const gw = api.get('gateway.networking.k8s.io/v1', 'Gateway', 'waypoint', 'demo')!;
    await until('the waypoint Deployment', () => api.get('apps/v1', 'Deployment', 'waypoint', 'demo') !== undefined, 10_000);
    await controller.settled();

    const owner = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      name: 'waypoint',
      uid: gw.metadata.uid,
      controller: true,
      blockOwnerDeletion: true,
    };
    const made = [
      api.get('v1', 'ServiceAccount', 'waypoint', 'demo'),
      api.get('apps/v1', 'Deployment', 'waypoint', 'demo'),
      api.get('v1', 'Service', 'waypoint', 'demo'),
    ];
    for (const o of made) expect(o?.metadata.ownerReferences).toEqual([owner]);
    const deploy = api.get('apps/v1', 'Deployment', 'waypoint', 'demo')!;
    expect((deploy.spec as { template: { spec: { containers: { args: string[] }[] } } }).template.spec.containers[0].args.slice(0, 3)).toEqual([
      'waypoint',
      'run',
      '--name=waypoint',
    ]);
    for (const ns of ['demo', 'nodemesh-system'])
      expect(api.get('v1', 'ConfigMap', 'nodemesh-ca-root', ns)?.data).toEqual({
        'root-cert.pem': '-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n',
      });

    const svcIP = (api.get('v1', 'Service', 'waypoint', 'demo')!.spec as { clusterIP: string }).clusterIP;
    const status = async () =>
      (
        await kubectl(kubeconfig, [
          'get',
          'gateway',
          'waypoint',
          '-n',
          'demo',
          '-o',
          'jsonpath={range .status.conditions[*]}{.type}={.status}/{.reason} {end}{.status.addresses[0].value}',
        ])
      ).stdout;
    // No pod is ready yet (the stand-in runs no Deployment controller): not Programmed, and why.
    expect(await status()).toBe(`Accepted=True/Accepted Programmed=False/Pending ${svcIP}`);
    const message = await kubectl(kubeconfig, ['get', 'gateway', 'waypoint', '-n', 'demo', '-o', 'jsonpath={.status.conditions[1].message}']);
    expect(message.stdout).toMatch(/^the waypoint Deployment demo\/waypoint has 0 of 1 replicas available: its pods are not ready yet/);
    // What the Deployment controller writes once a pod is ready: Programmed follows (the
    // controller watches its Deployments; no resync needed).
    const d = api.get('apps/v1', 'Deployment', 'waypoint', 'demo')!;
    api.update({ ...d, status: { observedGeneration: 1, replicas: 1, readyReplicas: 1, availableReplicas: 1, updatedReplicas: 1 } }, 'status');
    await until('Programmed=True', async () => (await status()) === `Accepted=True/Accepted Programmed=True/Programmed ${svcIP}`, 10_000, 100);
    // The pod goes away: Programmed=False again.
    api.update({ ...api.get('apps/v1', 'Deployment', 'waypoint', 'demo')!, status: { observedGeneration: 1, replicas: 1, availableReplicas: 0 } }, 'status');
    await until('Programmed=False', async () => (await status()).includes('Programmed=False/Pending'), 10_000, 100);

    // The mirror sees the waypoint's Service (labelled with the Gateway's name): the backend's
    // waypoint resolves to it.
    await until('the waypoint Service to be mirrored', () => store.snapshot().get('Service', 'waypoint', 'demo') !== undefined, 5000);
    const backend = translateWorkloadApi(store.snapshot()).addresses.get('demo/backend.demo.svc.cluster.local');
    const svc = backend?.type?.$case === 'service' ? backend.type.value : undefined;
    expect(svc?.waypoint?.destination).toMatchObject({ $case: 'hostname', value: { namespace: 'demo', hostname: 'waypoint.demo.svc.cluster.local' } });

    // Deleted by hand: put back by the next pass.
    await kubectl(kubeconfig, ['delete', 'deployment', 'waypoint', '-n', 'demo']);
    await controller.settled();
    expect(api.get('apps/v1', 'Deployment', 'waypoint', 'demo')).toBeDefined();
    // A pass over unchanged objects writes nothing.
    const rv = api.resourceVersion;
    await controller.settled();
    expect(api.resourceVersion).toBe(rv);

    const deleted = await kubectl(kubeconfig, ['delete', 'gateway', 'waypoint', '-n', 'demo']);
    expect(deleted.stdout).toBe('gateway.gateway.networking.k8s.io "waypoint" deleted\n');
    expect(api.get('apps/v1', 'Deployment', 'waypoint', 'demo')).toBeUndefined();
    expect(api.get('v1', 'Service', 'waypoint', 'demo')).toBeUndefined();
    expect(api.get('v1', 'ServiceAccount', 'waypoint', 'demo')).toBeUndefined();
    await controller.settled();
    expect(api.get('apps/v1', 'Deployment', 'waypoint', 'demo')).toBeUndefined();
  });
});
