// Identity on Kubernetes, over real gRPC/TLS to the real CA: node proxies and waypoints present
// projected ServiceAccount tokens (audience nodemesh-ca) that the CA checks with a TokenReview
// against the stand-in API server; placement comes from the Kubernetes config source's mirror.
import { writeFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { CertificateRequestError } from '../../common/identity/ca-client';
import { createWorkloadCsr } from '../../common/identity/keys';
import { identity } from '../../common/identity/spiffe';
import { verifyPeerChain } from '../../common/identity/verify';
import { kubeModule } from '../../control/kubernetes/client';
import { cleanupAfterEach } from '../support/cleanups';
import { until } from '../support/until';
import { startIdentityCluster } from './identity-fixture';

const cleanup = cleanupAfterEach();
const setup = () => startIdentityCluster(cleanup);

async function refusal(p: Promise<unknown>): Promise<CertificateRequestError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CertificateRequestError);
  return err as CertificateRequestError;
}

describe('CA with Kubernetes ServiceAccount tokens (TokenReview)', () => {
  it("gives a node proxy a certificate for a pod on its own node: the chain verifies with the pod's SPIFFE ID", async () => {
    const { client, podToken, proxy1, bundle } = await setup();
    const { c } = client(podToken(proxy1));
    const web = identity('demo', 'web');
    const { csrPem } = await createWorkloadCsr(web);
    const issued = await c.createCertificate(csrPem, 3600);
    expect(verifyPeerChain([...issued.certChainPem], bundle, { expected: web }).spiffeId).toBe('spiffe://cluster.local/ns/demo/sa/web');
  });

  it('refuses a node proxy a pod scheduled on another node with PERMISSION_DENIED', async () => {
    const { client, podToken, proxy1 } = await setup();
    const { csrPem } = await createWorkloadCsr(identity('demo', 'db'));
    const err = await refusal(client(podToken(proxy1)).c.createCertificate(csrPem, 3600));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.message).toMatch(/node 'node1' may not obtain a certificate for spiffe:\/\/cluster.local\/ns\/demo\/sa\/db/);
  });

  it('refuses a token for another audience, an unknown token and an unbound token with UNAUTHENTICATED', async () => {
    const { client, podToken, proxy1, api } = await setup();
    const { csrPem } = await createWorkloadCsr(identity('demo', 'web'));
    const wrongAudience = await refusal(client(podToken(proxy1, ['https://kubernetes.default.svc'])).c.createCertificate(csrPem, 3600));
    expect(wrongAudience.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(wrongAudience.message).toMatch(/not accepted for audience nodemesh-ca: .*audiences/);
    const forged = await refusal(client('eyJhbGciOiJIUzI1NiJ9.e30.bm90LXNpZ25lZA').c.createCertificate(csrPem, 3600));
    expect(forged.code).toBe(grpc.status.UNAUTHENTICATED);
    const unbound = api.issueToken({ namespace: 'nodemesh-system', serviceAccount: 'nodemesh-node', audiences: ['nodemesh-ca'] });
    const notBound = await refusal(client(unbound).c.createCertificate(csrPem, 3600));
    expect(notBound.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(notBound.message).toMatch(/not bound to a pod/);
  });

  it('gives a waypoint only its own ServiceAccount identity', async () => {
    const { client, podToken, waypoint, bundle } = await setup();
    const { c } = client(podToken(waypoint));
    const own = identity('demo', 'waypoint');
    const issued = await c.createCertificate((await createWorkloadCsr(own)).csrPem, 3600);
    expect(verifyPeerChain([...issued.certChainPem], bundle, { expected: own }).spiffeId).toBe('spiffe://cluster.local/ns/demo/sa/waypoint');
    // db runs on the waypoint's node, but it is not the waypoint's identity.
    const err = await refusal(c.createCertificate((await createWorkloadCsr(identity('demo', 'db'))).csrPem, 3600));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.message).toMatch(/may only obtain a certificate for its own service account demo\/waypoint/);
  });

  it('reads the token file at every request (a rotated token works; a token whose pod was deleted does not)', async () => {
    const { client, podToken, proxy2, api, kubeconfig, store } = await setup();
    const { c, tokenFile } = client('not-a-token-yet');
    const { csrPem } = await createWorkloadCsr(identity('demo', 'db'));
    expect((await refusal(c.createCertificate(csrPem, 3600))).code).toBe(grpc.status.UNAUTHENTICATED);
    // kubelet's TokenRequest, through the API: a token bound to the node proxy's pod.
    const k8s = await kubeModule();
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfig);
    const requested = await kc.makeApiClient(k8s.CoreV1Api).createNamespacedServiceAccountToken({
      name: 'nodemesh-node',
      namespace: 'nodemesh-system',
      body: {
        spec: {
          audiences: ['nodemesh-ca'],
          expirationSeconds: 600,
          boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: proxy2.metadata.name!, uid: proxy2.metadata.uid! },
        },
      },
    });
    writeFileSync(tokenFile, requested.status!.token);
    await c.createCertificate(csrPem, 3600);
    // A new pod replaces the node proxy: the old pod's token is no longer valid.
    api.delete('v1', 'Pod', proxy2.metadata.name!, 'nodemesh-system');
    const fresh = api.runPod({
      namespace: 'nodemesh-system',
      name: 'nodemesh-node-c',
      node: 'node2',
      ip: '10.199.0.2',
      serviceAccount: 'nodemesh-node',
      hostNetwork: true,
    });
    writeFileSync(tokenFile, podToken(fresh));
    await until('the mirror to settle', () => store.snapshot().get('Workload', 'db-1', 'demo') !== undefined);
    await c.createCertificate(csrPem, 3600);
    const stale = client(podToken(proxy2)).c;
    expect((await refusal(stale.createCertificate(csrPem, 3600))).code).toBe(grpc.status.UNAUTHENTICATED);
  });
});
