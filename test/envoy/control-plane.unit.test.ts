// The Envoy xDS component inside a real ControlPlane: a waypoint's SotW ADS stream on the
// plaintext xDS port gets its listeners, and GET /debug/xds (what `nodemesh proxy-config xds`
// shows) reports what it was sent and acknowledged.
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
import { baseMesh } from './fixtures';

const dir = mkdtempSync(join(tmpdir(), 'nm-envoy-cp-'));
let cp: ControlPlane;
let xds: XdsComponent;
let envoy: EnvoyXdsComponent;

beforeAll(async () => {
  const components = await envoyAndXdsComponents({
    NODEMESH_XDS_LISTEN: '127.0.0.1:0',
    NODEMESH_XDS_PLAINTEXT_LISTEN: '127.0.0.1:0',
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
