// The certificate service end to end over real gRPC-over-TLS on loopback: a node proxy client with
// a node token asks for a workload certificate; the CA checks who the node is and what runs there.
import { IssuedCertificates } from '../../control/ca/issued';
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log';
import { CaClient, CertificateRequestError } from '../../common/identity/ca-client';
import { createWorkloadCsr } from '../../common/identity/keys';
import { CertificateManager } from '../../common/identity/manager';
import { formatSpiffeId, identity } from '../../common/identity/spiffe';
import { trustBundle, verifyPeerChain } from '../../common/identity/verify';
import { CertificateAuthority } from '../../control/ca/authority';
import { placementFromSnapshot } from '../../control/ca/placement';
import { addCertificateService, servingCredentials } from '../../control/ca/service';
import { NodeTokens } from '../../control/ca/tokens';
import type { Workload } from '../../control/resources/workload';
import { MemorySnapshot } from '../../control/store/snapshot';
import { openTestCa, type TestCa } from '../support/control-plane';

function workload(name: string, namespace: string, serviceAccount: string, node: string, address: string): Workload {
  return {
    apiVersion: 'nodemesh.io/v1alpha1',
    kind: 'Workload',
    metadata: { name, namespace },
    spec: { serviceAccount, node, addresses: [address] },
  } as Workload;
}

let testCa: TestCa;
let ca: CertificateAuthority;
let server: grpc.Server;
let address: string;
let tokens: NodeTokens;
let node1Token: string;
let node2Token: string;
const registry = new Registry();
const clients: CaClient[] = [];

beforeAll(async () => {
  testCa = await openTestCa('ca-svc');
  ca = testCa.ca;
  tokens = NodeTokens.forDataDir(testCa.dir);
  node1Token = tokens.issue('node-1');
  node2Token = tokens.issue('node-2');
  const snapshot = MemorySnapshot.of(1, [workload('web-1', 'shop', 'web', 'node-1', '10.200.1.10'), workload('db-1', 'shop', 'db', 'node-2', '10.200.2.10')]);
  server = new grpc.Server();
  addCertificateService(server, {
    ca,
    nodes: tokens,
    placement: placementFromSnapshot(() => snapshot, ca.trustDomain),
    registry,
    issued: issuedLog,
    logger: createLogger('ca', 'silent'),
  });
  const serving = await ca.servingCertificate({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', servingCredentials(serving), (err, p) => (err ? reject(err) : resolve(p))),
  );
  address = `127.0.0.1:${port}`;
});

afterAll(async () => {
  for (const c of clients) c.close();
  await new Promise<void>((r) => server.tryShutdown(() => r()));
  testCa.remove();
});

function client(token: string): CaClient {
  const c = new CaClient({ address, rootPem: ca.trustBundlePem.join(''), token });
  clients.push(c);
  return c;
}

async function refusal(p: Promise<unknown>): Promise<CertificateRequestError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CertificateRequestError);
  return err as CertificateRequestError;
}

const issuedLog = new IssuedCertificates();

describe('certificate service over gRPC/TLS', () => {
  it('gives node-1 a certificate for a workload scheduled on node-1, and the chain verifies', async () => {
    const web = identity('shop', 'web');
    const { csrPem, key } = await createWorkloadCsr(web);
    const issued = await client(node1Token).createCertificate(csrPem, 0);
    expect(issued.certChainPem).toHaveLength(1);
    const peer = verifyPeerChain([...issued.certChainPem], trustBundle('cluster.local', [...issued.trustBundlePem]), { expected: web });
    expect(peer.spiffeId).toBe('spiffe://cluster.local/ns/shop/sa/web');
    const leaf = new X509Certificate(issued.certChainPem[0] as string);
    expect(leaf.checkPrivateKey(key.privateKey)).toBe(true);
    expect(leaf.verify(new X509Certificate(issued.trustBundlePem[0] as string).publicKey)).toBe(true);
    expect(await registry.getSingleMetricAsString('nodemesh_ca_certificates_issued_total')).toMatch(/node="node-1"} 1/);
    // Noted for the /ui workload page: serial and expiry of the leaf, per identity and node.
    expect(issuedLog.forIdentity(leaf.subjectAltName?.replace(/^URI:/, '') ?? '')).toMatchObject([
      { node: 'node-1', serialNumber: expect.stringMatching(/^[0-9a-f]+$/i), notAfter: new Date(leaf.validTo).toISOString() },
    ]);
  });

  it('refuses node-1 a workload that runs on node-2, with PERMISSION_DENIED naming identity and node', async () => {
    const { csrPem } = await createWorkloadCsr(identity('shop', 'db'));
    const err = await refusal(client(node1Token).createCertificate(csrPem, 0));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.message).toContain(`node 'node-1' may not obtain a certificate for ${formatSpiffeId(identity('shop', 'db'))}`);
    // node-2 may have it.
    const ok = await client(node2Token).createCertificate(csrPem, 0);
    expect(verifyPeerChain([...ok.certChainPem], ca.trustBundle).spiffeId).toBe('spiffe://cluster.local/ns/shop/sa/db');
  });

  it('refuses a bad or missing token with UNAUTHENTICATED', async () => {
    const { csrPem } = await createWorkloadCsr(identity('shop', 'web'));
    const bad = await refusal(client('nmt_not-a-real-token').createCertificate(csrPem, 0));
    expect(bad.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(bad.message).toMatch(/node token is not known/);

    // A replaced token stops working at once.
    const old = tokens.issue('node-3');
    tokens.issue('node-3');
    expect((await refusal(client(old).createCertificate(csrPem, 0))).code).toBe(grpc.status.UNAUTHENTICATED);

    // No authorization metadata at all.
    const raw = new grpc.Client(address, grpc.credentials.createSsl(Buffer.from(ca.trustBundlePem.join(''))));
    try {
      const { CertificateServiceService, CreateCertificateRequest } = await import('../../api/gen/nodemesh/ca/v1/ca.js');
      const def = CertificateServiceService.createCertificate;
      const code = await new Promise<grpc.status>((resolve) =>
        raw.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, CreateCertificateRequest.fromPartial({ csr: csrPem }), (e) =>
          resolve(e ? e.code : grpc.status.OK),
        ),
      );
      expect(code).toBe(grpc.status.UNAUTHENTICATED);
    } finally {
      raw.close();
    }
  });

  it('refuses a malformed CSR and an over-long TTL with INVALID_ARGUMENT', async () => {
    const garbage = await refusal(client(node1Token).createCertificate('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', 0));
    expect(garbage.code).toBe(grpc.status.INVALID_ARGUMENT);
    const { csrPem } = await createWorkloadCsr(identity('shop', 'web'));
    const long = await refusal(client(node1Token).createCertificate(csrPem, 365 * 86400));
    expect(long.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(long.message).toMatch(/longer than this CA's maximum/);
    const refusals = await registry.getSingleMetricAsString('nodemesh_ca_certificate_refusals_total');
    expect(refusals).toMatch(/reason="invalid_argument"} 2/);
  });

  it('a CertificateManager over the real gRPC client gets, caches and checks a certificate', async () => {
    const manager = new CertificateManager({ source: client(node1Token), trustDomain: 'cluster.local' });
    try {
      const web = identity('shop', 'web');
      const [a, b] = await Promise.all([manager.ready(web), manager.get(web)]);
      expect(a).toBe(b);
      expect(verifyPeerChain([a.certChainPem], ca.trustBundle, { expected: web }).spiffeId).toBe('spiffe://cluster.local/ns/shop/sa/web');
      expect(a.notAfter.getTime() - a.notBefore.getTime()).toBe((24 * 3600 + 60) * 1000);
      await expect(manager.get(identity('shop', 'db'))).rejects.toThrow(/PERMISSION_DENIED: node 'node-1' may not obtain a certificate/);
    } finally {
      manager.close();
    }
  });

  it('the client refuses a control plane whose certificate is not from the mesh root', async () => {
    const other = await openTestCa('ca-other');
    try {
      const c = new CaClient({ address, rootPem: other.ca.trustBundlePem.join(''), token: node1Token, timeoutMs: 3000 });
      clients.push(c);
      const { csrPem } = await createWorkloadCsr(identity('shop', 'web'));
      const err = await refusal(c.createCertificate(csrPem, 0));
      expect(err.code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      other.remove();
    }
  });
});
