import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { Bootstrap } from '../../api/gen/envoy/config/bootstrap/v3/bootstrap';
import { viewOfClient } from './publisher';
import { waypointBootstrap, waypointNodeId } from './bootstrap';
import { runWaypointBootstrap } from './cli';

function capture() {
  let text = '';
  const stream = { write: (s: string) => ((text += s), true) } as unknown as NodeJS.WritableStream;
  return { stream, text: () => text };
}

describe('waypoint bootstrap', () => {
  it('round-trips through the generated Bootstrap type (binary and proto3 JSON)', () => {
    const b = waypointBootstrap({ name: 'wp', namespace: 'shop', ip: '10.200.1.50', xdsAddress: '10.199.0.1:15012' });
    const bytes = Bootstrap.encode(b).finish();
    expect(Bootstrap.decode(bytes)).toEqual(b);
    expect(Buffer.from(Bootstrap.encode(Bootstrap.fromJSON(Bootstrap.toJSON(b))).finish())).toEqual(Buffer.from(bytes));
  });

  it("names the waypoint so the control plane gives it its Gateway's listeners", () => {
    const id = waypointNodeId({ name: 'wp', namespace: 'shop', ip: '10.200.1.50' });
    expect(id).toBe('waypoint~10.200.1.50~wp.shop~shop.svc.cluster.local');
    expect(viewOfClient({ nodeId: id, metadata: {} })).toBe('waypoint:shop/wp');
    expect(viewOfClient({ nodeId: 'x', metadata: { NODEMESH_WAYPOINT: 'shop/wp' } })).toBe('waypoint:shop/wp');
    expect(viewOfClient({ nodeId: 'proxyless~1.2.3.4~c.ns~ns.svc.cluster.local', metadata: {} })).toBe('proxyless');
  });

  it('prints YAML with ADS over mTLS to the control plane, LDS/CDS over ADS and internal listeners', async () => {
    const out = capture();
    const code = await runWaypointBootstrap(
      ['--name', 'wp', '-n', 'shop', '--xds-address', 'nodemesh-control.nodemesh-system.svc:15012', '--certs', '/etc/wp/'],
      {
        stdout: out.stream,
        stderr: out.stream,
        stdin: process.stdin,
        env: {},
      },
    );
    expect(code).toBe(0);
    const y = parseYaml(out.text());
    expect(y.node.id).toBe('waypoint~0.0.0.0~wp.shop~shop.svc.cluster.local');
    expect(y.node.metadata.NODEMESH_WAYPOINT).toBe('shop/wp');
    expect(y.dynamicResources.adsConfig).toMatchObject({
      apiType: 'GRPC',
      transportApiVersion: 'V3',
      grpcServices: [{ envoyGrpc: { clusterName: 'xds-grpc' } }],
    });
    expect(y.dynamicResources.ldsConfig).toEqual({ ads: {}, resourceApiVersion: 'V3' });
    const xds = y.staticResources.clusters[0];
    expect(xds.type).toBe('STRICT_DNS');
    expect(xds.transportSocket.typedConfig['@type']).toBe('type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext');
    // The certificate and root over SDS from the files next to them (reloaded on rotation).
    const common = xds.transportSocket.typedConfig.commonTlsContext;
    expect(common.tlsCertificates).toBeUndefined();
    expect(common.tlsCertificateSdsSecretConfigs).toEqual([
      { name: 'default', sdsConfig: { pathConfigSource: { path: '/etc/wp/sds-default.json' }, resourceApiVersion: 'V3' } },
    ]);
    expect(common.validationContextSdsSecretConfig).toEqual({
      name: 'ROOTCA',
      sdsConfig: { pathConfigSource: { path: '/etc/wp/sds-rootca.json' }, resourceApiVersion: 'V3' },
    });
    expect(xds.transportSocket.typedConfig.sni).toBe('nodemesh-control.nodemesh-system.svc');
    expect(y.bootstrapExtensions[0]).toMatchObject({ name: 'envoy.bootstrap.internal_listener' });
    // What it printed is a valid Bootstrap.
    expect(Bootstrap.toJSON(Bootstrap.fromJSON(y))).toEqual(y);
  });

  it('refuses a bad xDS address with a message that shows the expected form', async () => {
    const out = capture();
    await expect(
      runWaypointBootstrap(['--name', 'wp', '--xds-address', 'nocolon'], { stdout: out.stream, stderr: out.stream, stdin: process.stdin, env: {} }),
    ).rejects.toThrow(/not host:port \(e\.g\. 10\.199\.0\.1:15012/);
    await expect(runWaypointBootstrap([], { stdout: out.stream, stderr: out.stream, stdin: process.stdin, env: {} })).rejects.toThrow(/--name is required/);
  });

  it('puts no token in the bootstrap (the credential is the certificate) and refuses --token-file, saying why', async () => {
    const out = capture();
    const ctx = { stdout: out.stream, stderr: out.stream, stdin: process.stdin, env: {} };
    expect(await runWaypointBootstrap(['--name', 'wp', '-o', 'json'], ctx)).toBe(0);
    const y = JSON.parse(out.text());
    expect(y.dynamicResources.adsConfig.grpcServices).toEqual([{ envoyGrpc: { clusterName: 'xds-grpc' } }]);
    expect(out.text()).not.toMatch(/authorization|Bearer/i);
    await expect(runWaypointBootstrap(['--name', 'wp', '--token-file', '/var/run/secrets/nodemesh/token/token'], ctx)).rejects.toThrow(
      /--token-file is no longer taken: the control plane takes the waypoint's certificate \(--certs/,
    );
  });
});
