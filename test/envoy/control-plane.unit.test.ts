// The Envoy xDS component inside a real ControlPlane: a waypoint's SotW ADS stream on the
// plaintext xDS port gets its listeners, and GET /debug/xds (what `nodemesh proxy-config xds`
// shows) reports what it was sent and acknowledged. On the TLS port SotW ADS needs a node token,
// and a waypoint's node id must be a waypoint scheduled on the token's node.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Listener } from '../../api/gen/envoy/config/listener/v3/listener';
import { AggregatedDiscoveryServiceClient } from '../../api/gen/envoy/service/discovery/v3/ads';
import type { DiscoveryResponse } from '../../api/gen/envoy/service/discovery/v3/discovery';
import { ApiClient } from '../../control/api/client';
import { readToken } from '../../control/api/token';
import { ControlPlane } from '../../control/control-plane';
import { envoyAndXdsComponents, type EnvoyXdsComponent } from '../../control/envoy/component';
import type { XdsClientDump } from '../../control/envoy/debug';
import { LISTENER_TYPE_URL } from '../../control/envoy/names';
import type { XdsComponent } from '../../control/xds/component';
import { runProxyConfig } from '../../control/envoy/cli';
import { sotwRequest } from './ads-client';
import { NodeTokens } from '../../control/ca/tokens';
import { baseMesh, workload } from './fixtures';

const dir = mkdtempSync(join(tmpdir(), 'nm-envoy-cp-'));
let cp: ControlPlane;
let xds: XdsComponent;
let envoy: EnvoyXdsComponent;

beforeAll(async () => {
  const components = await envoyAndXdsComponents({
    NODEMESH_XDS_LISTEN: '127.0.0.1:0',
    NODEMESH_XDS_PLAINTEXT_LISTEN: '127.0.0.1:0',
    NODEMESH_XDS_REQUIRE_NODE_TOKEN: '1',
  });
  envoy = components[0] as EnvoyXdsComponent;
  xds = components[1] as XdsComponent;
  cp = new ControlPlane({ dataDir: dir, listen: '127.0.0.1:0', logger: pino({ level: 'silent' }), components });
  await cp.start();
  await cp.store.applyAll(baseMesh());
}, 30_000);

afterAll(async () => {
  await cp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('Envoy xDS in the control plane', () => {
  it('serves a waypoint over SotW ADS on the plaintext port and reports it on /debug/xds', async () => {
    const client = new AggregatedDiscoveryServiceClient(`127.0.0.1:${xds.grpc!.ports.plaintext}`, grpc.credentials.createInsecure());
    const call = client.streamAggregatedResources();
    try {
      const first = new Promise<DiscoveryResponse>((resolve, reject) => {
        call.once('data', resolve);
        call.once('error', reject);
      });
      const nodeId = 'waypoint~10.200.1.50~wp.default~default.svc.cluster.local';
      call.write(sotwRequest({ typeUrl: LISTENER_TYPE_URL, node: { id: nodeId } }));
      const lds = await first;
      expect(lds.resources.map((a) => Listener.decode(a.value).name)).toContain('connect_terminate');
      call.write(sotwRequest({ typeUrl: LISTENER_TYPE_URL, versionInfo: lds.versionInfo, responseNonce: lds.nonce }));

      const api = new ApiClient({ server: cp.apiURL, token: readToken(cp.tokenFile) });
      let dump: { clients: XdsClientDump[] } | undefined;
      for (let i = 0; i < 50; i++) {
        dump = await api.debug<{ clients: XdsClientDump[] }>(`xds?client=${encodeURIComponent('wp.default')}`);
        if (dump.clients[0]?.types.lds && 'acked' in dump.clients[0].types.lds && dump.clients[0].types.lds.acked) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const c = dump!.clients.find((x) => x.api === 'sotw')!;
      expect(c.nodeId).toBe(nodeId);
      expect(c.view).toBe('waypoint:default/wp');
      const lt = c.types.lds as { acked?: { version: string; resources: string[] }; sent?: { version: string } };
      expect(lt.acked?.version).toBe(lds.versionInfo);
      expect(lt.acked?.resources).toContain('connect_terminate');
      expect(envoy.dump({ client: 'nobody' })).toEqual([]);

      // The CLI prints the same.
      let out = '';
      const stdout = { write: (s: string) => ((out += s), true) } as unknown as NodeJS.WritableStream;
      const code = await runProxyConfig(['xds', '--client', 'wp.default', '--server', cp.apiURL, '--token-file', cp.tokenFile], {
        stdout,
        stderr: stdout,
        stdin: process.stdin,
        env: {},
      });
      expect(code).toBe(0);
      expect(out).toContain(nodeId);
      expect(out).toMatch(/lds\s+acked\s+\S+\s+4 resources/);
    } finally {
      call.cancel();
      client.close();
    }
  });
});

/** The first response of a SotW LDS stream on the TLS port, or its error. */
async function tlsLds(token: string | undefined | grpc.Metadata, node: { id: string }): Promise<DiscoveryResponse> {
  const creds = grpc.credentials.createSsl(Buffer.from(xds.grpc!.trustBundlePem!));
  const client = new AggregatedDiscoveryServiceClient(`localhost:${xds.grpc!.ports.tls}`, creds);
  const md = token instanceof grpc.Metadata ? token : new grpc.Metadata();
  if (typeof token === 'string') md.set('authorization', `Bearer ${token}`);
  const call = client.streamAggregatedResources(md);
  try {
    const first = new Promise<DiscoveryResponse>((resolve, reject) => {
      call.once('data', resolve);
      call.once('error', reject);
    });
    call.write(sotwRequest({ typeUrl: LISTENER_TYPE_URL, node }));
    return await first;
  } finally {
    call.cancel();
    client.close();
  }
}

describe('SotW ADS on the TLS port', () => {
  const waypointId = 'waypoint~10.200.1.50~wp.default~default.svc.cluster.local';

  it('refuses a stream without a node token or with a forged one (UNAUTHENTICATED)', async () => {
    await expect(tlsLds(undefined, { id: waypointId })).rejects.toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
      details: expect.stringMatching(/no node credential/),
    });
    await expect(tlsLds('nmt_forged', { id: waypointId })).rejects.toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
      details: expect.stringMatching(/not valid/),
    });
  });

  it("binds the stream to the token's node: a waypoint only where it is scheduled, a node proxy only as itself (PERMISSION_DENIED)", async () => {
    const tokens = NodeTokens.forDataDir(dir);
    const node1 = tokens.issue('node-1');
    const node2 = tokens.issue('node-2');
    // No Workload of waypoint default/wp yet: nobody may read its view.
    await expect(tlsLds(node1, { id: waypointId })).rejects.toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      details: expect.stringMatching(/may not act as waypoint default\/wp/),
    });
    await cp.store.apply(workload('wp-pod', '10.200.1.50', { 'gateway.networking.k8s.io/gateway-name': 'wp' }, { node: 'node-1' }));
    const lds = await tlsLds(node1, { id: waypointId });
    expect(lds.resources.map((a) => Listener.decode(a.value).name)).toContain('connect_terminate');
    // node-2's token may not read node-1's waypoint, nor claim to be node-1's proxy.
    await expect(tlsLds(node2, { id: waypointId })).rejects.toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      details: expect.stringMatching(/node 'node-2'.*waypoint default\/wp/),
    });
    await expect(tlsLds(node2, { id: 'node-proxy~node-1' })).rejects.toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      details: expect.stringMatching(/belongs to node "node-2"/),
    });
    // A proxyless client claims nothing: any valid token reads the proxyless view.
    expect((await tlsLds(node2, { id: 'proxyless~10.0.0.1~c.default~default.svc.cluster.local' })).typeUrl).toBe(LISTENER_TYPE_URL);
  });
});
