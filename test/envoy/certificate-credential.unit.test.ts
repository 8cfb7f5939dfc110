// An Envoy waypoint's credential on 15012 is its mesh certificate (what its xDS cluster presents
// over SDS, renewed by `waypoint cert-agent`), so it needs no token in its bootstrap, where Envoy
// would send the same one for ever. The certificate speaks for its service account only: it is
// served as the waypoint that runs as it, and refused as another waypoint or as a node proxy; a
// certificate from another CA is UNAUTHENTICATED; the certificate wins over a token beside it
// (an expired or forged one). What `nodemesh waypoint bootstrap` gives Envoy is served with that
// certificate alone.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Listener } from '../../api/gen/envoy/config/listener/v3/listener';
import { AggregatedDiscoveryServiceClient } from '../../api/gen/envoy/service/discovery/v3/ads';
import type { DiscoveryResponse } from '../../api/gen/envoy/service/discovery/v3/discovery';
import { CaClient } from '../../common/identity/ca-client';
import { CertificateManager, type WorkloadCertificate } from '../../common/identity/manager';
import { identity } from '../../common/identity/spiffe';
import { NodeTokens } from '../../control/ca/tokens';
import { ControlPlane } from '../../control/control-plane';
import { runWaypointBootstrap } from '../../control/envoy/cli';
import { envoyAndXdsComponents } from '../../control/envoy/component';
import { LISTENER_TYPE_URL } from '../../control/envoy/names';
import type { XdsComponent } from '../../control/xds/component';
import { CertificateAuthority } from '../../control/ca';
import { sotwRequest } from './ads-client';
import { baseMesh, workload } from './fixtures';

const dir = mkdtempSync(join(tmpdir(), 'nm-envoy-cert-'));
let cp: ControlPlane;
let xds: XdsComponent;
const closers: Array<() => void> = [];

async function certificateFor(node: string, sa: string): Promise<WorkloadCertificate> {
  const tokenFile = join(dir, `${node}.token`);
  writeFileSync(tokenFile, NodeTokens.forDataDir(dir).issue(node));
  const client = new CaClient({ address: `localhost:${xds.grpc!.ports.tls}`, rootPem: xds.grpc!.trustBundlePem!, tokenFile });
  const manager = new CertificateManager({ source: client, trustDomain: 'cluster.local', ttlSeconds: 600 });
  closers.push(() => (manager.close(), client.close()));
  return manager.get(identity('default', sa));
}

/** The first response of a SotW LDS stream on the TLS port with a client certificate, or its error. */
async function ldsWith(cert: { key: string; chain: string } | undefined, token: string | undefined, nodeId: string): Promise<DiscoveryResponse> {
  const roots = Buffer.from(xds.grpc!.trustBundlePem!);
  const creds = cert ? grpc.credentials.createSsl(roots, Buffer.from(cert.key), Buffer.from(cert.chain)) : grpc.credentials.createSsl(roots);
  const client = new AggregatedDiscoveryServiceClient(`localhost:${xds.grpc!.ports.tls}`, creds);
  const md = new grpc.Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  const call = client.streamAggregatedResources(md);
  try {
    const first = new Promise<DiscoveryResponse>((resolve, reject) => {
      call.once('data', resolve);
      call.once('error', reject);
    });
    call.write(sotwRequest({ typeUrl: LISTENER_TYPE_URL, node: { id: nodeId } }));
    return await first;
  } finally {
    call.cancel();
    client.close();
  }
}

const waypointId = 'waypoint~10.200.1.50~wp.default~default.svc.cluster.local';
let wp: WorkloadCertificate;
let web: WorkloadCertificate;

beforeAll(async () => {
  const components = await envoyAndXdsComponents({
    NODEMESH_XDS_LISTEN: '127.0.0.1:0',
    NODEMESH_XDS_PLAINTEXT_LISTEN: '127.0.0.1:0',
    NODEMESH_XDS_REQUIRE_NODE_TOKEN: '1',
  });
  xds = components[1] as XdsComponent;
  cp = new ControlPlane({ dataDir: dir, listen: '127.0.0.1:0', logger: pino({ level: 'silent' }), components });
  await cp.start();
  await cp.store.applyAll([...baseMesh(), workload('wp', '10.200.1.50', { 'gateway.networking.k8s.io/gateway-name': 'wp' }, { node: 'node-1' })]);
  wp = await certificateFor('node-1', 'wp');
  web = await certificateFor('node-1', 'web-a');
}, 30_000);

afterAll(async () => {
  for (const c of closers) c();
  await cp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a mesh certificate as the ADS credential on 15012', () => {
  it("serves the waypoint's own certificate as that waypoint, with no token", async () => {
    const lds = await ldsWith({ key: wp.privateKeyPem, chain: wp.certChainPem }, undefined, waypointId);
    expect(lds.resources.map((a) => Listener.decode(a.value).name)).toContain('connect_terminate');
  });

  it('takes the certificate over a token beside it (a forged or expired token does not matter)', async () => {
    const lds = await ldsWith({ key: wp.privateKeyPem, chain: wp.certChainPem }, 'nmt_forged', waypointId);
    expect(lds.typeUrl).toBe(LISTENER_TYPE_URL);
  });

  it('refuses another service account as that waypoint, and any certificate as a node proxy (PERMISSION_DENIED)', async () => {
    await expect(ldsWith({ key: web.privateKeyPem, chain: web.certChainPem }, undefined, waypointId)).rejects.toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      details: expect.stringMatching(/certificate of spiffe:\/\/cluster.local\/ns\/default\/sa\/web-a may not act as waypoint default\/wp/),
    });
    await expect(ldsWith({ key: wp.privateKeyPem, chain: wp.certChainPem }, undefined, 'node-proxy~node-1')).rejects.toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      details: expect.stringMatching(/is not a node proxy/),
    });
  });

  it("does not take a certificate of another mesh's CA, nor no credential at all (UNAUTHENTICATED)", async () => {
    const other = await CertificateAuthority.open({ trustDomain: 'cluster.local', dataDir: join(dir, 'other-ca') });
    const foreign = await other.servingCertificate({ dnsNames: ['wp.default'] });
    await expect(ldsWith({ key: foreign.privateKeyPem, chain: foreign.certChainPem }, undefined, waypointId)).rejects.toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
      details: expect.stringMatching(/no node credential/),
    });
    await expect(ldsWith(undefined, undefined, waypointId)).rejects.toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
      details: expect.stringMatching(/no node credential/),
    });
  });

  it('serves an Envoy configured by `nodemesh waypoint bootstrap --certs DIR`: no token in it, the certificate in DIR is the credential', async () => {
    const certs = join(dir, 'wp-certs');
    mkdirSync(certs);
    writeFileSync(join(certs, 'cert-chain.pem'), wp.certChainPem);
    writeFileSync(join(certs, 'key.pem'), wp.privateKeyPem, { mode: 0o600 });
    let out = '';
    const stdout = { write: (s: string) => ((out += s), true) } as unknown as NodeJS.WritableStream;
    const ctx = { stdout, stderr: stdout, stdin: process.stdin, env: {} };
    expect(await runWaypointBootstrap(['--name', 'wp', '--ip', '10.200.1.50', '--certs', certs, '-o', 'json'], ctx)).toBe(0);
    expect(out).not.toMatch(/authorization|Bearer|nmt_/i);
    const bootstrap = JSON.parse(out);
    expect(bootstrap.dynamicResources.adsConfig.grpcServices).toEqual([{ envoyGrpc: { clusterName: 'xds-grpc' } }]);
    // the xDS cluster presents the certificate of DIR (over SDS, from the file the agent writes there)
    const common = bootstrap.staticResources.clusters[0].transportSocket.typedConfig.commonTlsContext;
    expect(common.tlsCertificateSdsSecretConfigs[0].sdsConfig.pathConfigSource.path).toBe(join(certs, 'sds-default.json'));
    const lds = await ldsWith({ key: wp.privateKeyPem, chain: wp.certChainPem }, undefined, bootstrap.node.id);
    expect(lds.resources.map((a) => Listener.decode(a.value).name)).toContain('connect_terminate');
  });
});
