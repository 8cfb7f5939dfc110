// Identity on Kubernetes for tests: the stand-in API server with two node proxies (host network),
// two apps and a waypoint pod; the Kubernetes config source's mirror; the real CA behind the real
// TLS gRPC server, checking projected ServiceAccount tokens with TokenReview against the stand-in.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { CaClient } from '../../common/identity/ca-client';
import { trustBundle } from '../../common/identity/verify';
import { placementFromSnapshot } from '../../control/ca/placement';
import { startControlGrpc } from '../../control/grpc';
import { KubernetesStore } from '../../control/kubernetes/store';
import { TokenReviewAuthenticator } from '../../control/kubernetes/token-review';
import type { Cleanup } from '../support/cleanups';
import { openTestCa, silentLogger } from '../support/control-plane';
import { startStandIn } from '../support/kube-apiserver';

/** The stand-in with node proxies, apps and a waypoint pod; the mirror; the real CA behind TLS gRPC with TokenReview. */
export async function startIdentityCluster(cleanup: (c: Cleanup) => void) {
  const { api, dir, kubeconfig } = await startStandIn(cleanup, 'k8s-identity');
  for (const name of ['nodemesh-system', 'demo']) api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  // The node proxies run on the host network (not Workloads); the apps and a waypoint are pods.
  const proxy1 = api.runPod({
    namespace: 'nodemesh-system',
    name: 'nodemesh-node-a',
    node: 'node1',
    ip: '10.199.0.1',
    serviceAccount: 'nodemesh-node',
    hostNetwork: true,
  });
  const proxy2 = api.runPod({
    namespace: 'nodemesh-system',
    name: 'nodemesh-node-b',
    node: 'node2',
    ip: '10.199.0.2',
    serviceAccount: 'nodemesh-node',
    hostNetwork: true,
  });
  api.runPod({ namespace: 'demo', name: 'web-1', node: 'node1', ip: '10.200.1.2', serviceAccount: 'web', labels: { app: 'web' } });
  api.runPod({ namespace: 'demo', name: 'db-1', node: 'node2', ip: '10.200.2.2', serviceAccount: 'db', labels: { app: 'db' } });
  const waypoint = api.runPod({
    namespace: 'demo',
    name: 'waypoint-x',
    node: 'node2',
    ip: '10.200.2.9',
    serviceAccount: 'waypoint',
    labels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' },
  });
  const store = await KubernetesStore.open({ kubeconfig, logger: silentLogger, syncTimeoutMs: 10_000 });
  cleanup(() => store.close());
  const testCa = await openTestCa('k8s-identity');
  cleanup(() => testCa.remove());
  const nodes = await TokenReviewAuthenticator.create({ kubeConfig: store.kubeConfig, nodeProxyServiceAccounts: ['nodemesh-system/nodemesh-node'] });
  const grpcSide = await startControlGrpc({
    store,
    tls: { host: '127.0.0.1', port: 0 },
    serverNames: { ipAddresses: ['127.0.0.1'] },
    certificates: {
      ca: testCa.ca,
      nodes,
      placement: placementFromSnapshot(() => store.snapshot(), testCa.ca.trustDomain),
      registry: new Registry(),
      logger: silentLogger,
    },
    registry: new Registry(),
    logger: silentLogger,
  });
  cleanup(() => grpcSide.stop());
  const rootPem = grpcSide.trustBundlePem!;
  /** A CA client that reads its token from a file at every request, as kubelet rotates it. */
  const client = (token: string) => {
    const tokenFile = join(dir, `token-${Math.random().toString(36).slice(2)}`);
    writeFileSync(tokenFile, token);
    const c = new CaClient({ address: `127.0.0.1:${grpcSide.ports.tls}`, rootPem, tokenFile, timeoutMs: 15_000 });
    cleanup(() => c.close());
    return { c, tokenFile };
  };
  const podToken = (pod: typeof proxy1, audiences = ['nodemesh-ca']) =>
    api.issueToken({
      namespace: pod.metadata.namespace!,
      serviceAccount: (pod.spec as { serviceAccountName: string }).serviceAccountName,
      audiences,
      pod: { name: pod.metadata.name!, uid: pod.metadata.uid! },
      node: { name: (pod.spec as { nodeName: string }).nodeName },
    });
  return {
    api,
    store,
    kubeconfig,
    dir,
    client,
    podToken,
    proxy1,
    proxy2,
    waypoint,
    /** The CA's TLS gRPC address and the mesh root. */
    control: `127.0.0.1:${grpcSide.ports.tls}`,
    rootPem,
    bundle: trustBundle(testCa.ca.trustDomain, rootPem),
  };
}
