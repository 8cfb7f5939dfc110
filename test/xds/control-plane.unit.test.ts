// The xDS component inside a real ControlPlane: CA from the data dir, serving certificate, node
// tokens required on 15012, the workload API following writes to the control plane's store.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { NodeTokens } from '../../control/ca/tokens';
import { ControlPlane } from '../../control/control-plane';
import { ADDRESS_TYPE_URL } from '../../control/workload/publisher';
import { createXdsComponent } from '../../control/xds/component';
import { DeltaClient } from './delta-client';

const dir = mkdtempSync(join(tmpdir(), 'nm-xds-cp-'));
const xds = createXdsComponent({
  env: {
    NODEMESH_XDS_LISTEN: '127.0.0.1:0',
    NODEMESH_XDS_PLAINTEXT_LISTEN: '127.0.0.1:0',
    NODEMESH_XDS_REQUIRE_NODE_TOKEN: '1',
  },
});
const cp = new ControlPlane({ dataDir: dir, listen: '127.0.0.1:0', logger: pino({ level: 'silent' }), components: [xds] });
const clients: DeltaClient[] = [];

afterAll(async () => {
  for (const c of clients) c.close();
  await cp.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the xDS component in the control plane', () => {
  it('serves the workload API on 15012 to nodes with a token, and on 15010 to loopback clients', async () => {
    await cp.start();
    const running = xds.grpc!;
    const creds = grpc.credentials.createSsl(Buffer.from(running.trustBundlePem!));
    const tlsAddress = `localhost:${running.ports.tls}`;

    const anonymous = new DeltaClient(tlsAddress, creds);
    clients.push(anonymous);
    anonymous.send({ typeUrl: ADDRESS_TYPE_URL });
    await expect(anonymous.next()).rejects.toThrow(/stream failed: 16 .*no node credential/);

    const forged = new grpc.Metadata();
    forged.set('authorization', 'Bearer not-a-token');
    const impostor = new DeltaClient(tlsAddress, creds, {}, forged);
    clients.push(impostor);
    impostor.send({ typeUrl: ADDRESS_TYPE_URL });
    await expect(impostor.next()).rejects.toThrow(/stream failed: 16 .*not valid/);

    const token = NodeTokens.forDataDir(dir).issue('node-1');
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    const node = new DeltaClient(tlsAddress, creds, {}, md);
    clients.push(node);
    node.send({ typeUrl: ADDRESS_TYPE_URL });
    const empty = await node.next();
    expect(empty.resources).toEqual([]);
    node.ack(empty);

    await cp.store.apply({
      apiVersion: 'nodemesh.io/v1alpha1',
      kind: 'Workload',
      metadata: { name: 'web-1', namespace: 'default' },
      spec: { node: 'node-1', addresses: ['10.200.1.5'] },
    });
    const update = await node.next();
    expect(update.resources.map((r) => r.name)).toEqual(['Workload/default/web-1']);
    expect(xds.grpc!.server.delta.clients().find((c) => c.nodeId === 'test-node')).toBeDefined();

    const local = new DeltaClient(`127.0.0.1:${running.ports.plaintext}`);
    clients.push(local);
    local.send({ typeUrl: ADDRESS_TYPE_URL });
    expect((await local.next()).resources.map((r) => r.name)).toEqual(['Workload/default/web-1']);
  });

  it("refuses node1's token with a node id or NODE_NAME claiming node2 (PERMISSION_DENIED), accepts its own", async () => {
    const running = xds.grpc!;
    const creds = grpc.credentials.createSsl(Buffer.from(running.trustBundlePem!));
    const tlsAddress = `localhost:${running.ports.tls}`;
    const tokens = NodeTokens.forDataDir(dir);
    const token1 = tokens.issue('node1');
    tokens.issue('node2');
    const stream = (scheme: string, node: { id: string; metadata?: Record<string, unknown> }): DeltaClient => {
      const md = new grpc.Metadata();
      md.set('authorization', `${scheme} ${token1}`);
      const c = new DeltaClient(tlsAddress, creds, {}, md);
      clients.push(c);
      c.send({ typeUrl: ADDRESS_TYPE_URL, node: node as never });
      return c;
    };
    await expect(stream('Bearer', { id: 'node-proxy~node2' }).next()).rejects.toThrow(/stream failed: 7 .*belongs to node "node1".*claims node "node2"/);
    await expect(stream('Bearer', { id: 'node-proxy~node1', metadata: { NODE_NAME: 'node2' } }).next()).rejects.toThrow(/stream failed: 7 /);
    await expect(stream('Bearer', { id: 'x', metadata: { NODE_NAME: 'node2' } }).next()).rejects.toThrow(/stream failed: 7 /);
    // its own node id, in any case of the scheme (RFC 7235: the auth-scheme is case-insensitive)
    for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
      const own = stream(scheme, { id: 'node-proxy~node1', metadata: { NODE_NAME: 'node1', ROLE: 'node-proxy' } });
      expect((await own.next()).typeUrl).toBe(ADDRESS_TYPE_URL);
    }
    // a waypoint: only one whose Workload (labelled with its Gateway's name) is scheduled on node1
    const waypointId = 'waypoint~10.200.1.201~waypoint.demo~demo.svc.cluster.local';
    await expect(stream('Bearer', { id: waypointId }).next()).rejects.toThrow(/stream failed: 7 .*may not act as waypoint demo\/waypoint/);
    await cp.store.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } });
    await cp.store.apply({
      apiVersion: 'nodemesh.io/v1alpha1',
      kind: 'Workload',
      metadata: { name: 'waypoint-1', namespace: 'demo', labels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' } },
      spec: { node: 'node2', addresses: ['10.200.1.201'], serviceAccount: 'waypoint' },
    });
    await expect(stream('Bearer', { id: waypointId }).next()).rejects.toThrow(/stream failed: 7 .*on node 'node1'/);
    await cp.store.apply({
      apiVersion: 'nodemesh.io/v1alpha1',
      kind: 'Workload',
      metadata: { name: 'waypoint-1', namespace: 'demo', labels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' } },
      spec: { node: 'node1', addresses: ['10.200.1.201'], serviceAccount: 'waypoint' },
    });
    expect((await stream('Bearer', { id: waypointId }).next()).typeUrl).toBe(ADDRESS_TYPE_URL);
    await expect(stream('Basic', { id: 'node-proxy~node1' }).next()).rejects.toThrow(/stream failed: 16 /);
  });
});
