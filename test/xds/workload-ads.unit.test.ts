// The workload API over delta ADS, end to end on loopback: a real config store, the real
// translation and gRPC server, and real @grpc/grpc-js clients built from the generated stubs.
import * as http2 from 'node:http2';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { Registry, type Histogram } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DeltaDiscoveryRequest, DeltaDiscoveryResponse } from '../../api/gen/envoy/service/discovery/v3/discovery';
import { Address, TunnelProtocol } from '../../api/gen/nodemesh/workload/v1/workload';
import { ControlGrpcServer, type ControlGrpc } from '../../control/grpc';
import { MemoryStore } from '../../control/store/base-store';
import { SharedCache } from '../../control/xds/cache';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL } from '../../control/workload/publisher';
import { cleanupAfterEach } from '../support/cleanups';
import { openTestCa, servePlaintext, serveTls } from '../support/control-plane';
import { ambientWeb, workload } from '../envoy/fixtures';
import { DeltaClient } from './delta-client';

const cleanup = cleanupAfterEach();

function capturingLogger(): { logger: pino.Logger; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return {
    logger: pino({ level: 'debug' }, sink),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

async function setup(opts: { registry?: Registry; logger?: pino.Logger } = {}) {
  const store = new MemoryStore();
  await store.applyAll(ambientWeb());
  const grpcSide = await servePlaintext(store, opts);
  cleanup(async () => {
    await grpcSide.stop();
    await store.close();
  });
  const address = `127.0.0.1:${grpcSide.ports.plaintext}`;
  const connect = () => {
    const c = new DeltaClient(address);
    cleanup(() => c.close());
    return c;
  };
  return { store, grpcSide, address, connect };
}

const names = (rs: DeltaDiscoveryResponse[]) => rs.flatMap((r) => r.resources.map((x) => x.name)).sort();

describe('workload API over delta ADS', () => {
  it('sends the full state to a wildcard subscriber, then only each change', async () => {
    const { store, connect } = await setup();
    const c = connect();
    c.send({ typeUrl: ADDRESS_TYPE_URL });
    const first = await c.next();
    expect(first.typeUrl).toBe(ADDRESS_TYPE_URL);
    expect(names([first])).toEqual(['Workload/default/web-1', 'Workload/default/web-2', 'default/web.default.svc.cluster.local']);
    const web1 = first.resources.find((r) => r.name === 'Workload/default/web-1')!;
    const decoded = Address.decode(web1.resource!.value);
    expect(decoded.type?.$case).toBe('workload');
    if (decoded.type?.$case === 'workload') {
      expect(decoded.type.value.tunnelProtocol).toBe(TunnelProtocol.TUNNEL_PROTOCOL_HBONE);
      expect(Object.keys(decoded.type.value.services)).toEqual(['default/web.default.svc.cluster.local']);
    }
    c.ack(first);

    await store.apply(workload('web-3', '10.200.1.7', { app: 'web' }));
    const added = await c.next();
    expect(names([added])).toEqual(['Workload/default/web-3']);
    expect(added.removedResources).toEqual([]);
    expect(added.nonce).not.toBe(first.nonce);
    c.ack(added);

    await store.delete({ kind: 'Workload', namespace: 'default', name: 'web-1' });
    const removed = await c.next();
    expect(removed.resources).toEqual([]);
    expect(removed.removedResources).toEqual(['Workload/default/web-1']);
    c.ack(removed);

    // A write that does not change the translation sends nothing.
    await store.apply({
      ...workload('web-2', '10.200.1.6', { app: 'web' }),
      metadata: { name: 'web-2', namespace: 'default', labels: { app: 'web' }, annotations: { note: 'x' } },
    });
    await c.expectNothing(300);
  });

  it('serves authorizations on the same stream', async () => {
    const { store, connect } = await setup();
    const c = connect();
    c.send({ typeUrl: AUTHORIZATION_TYPE_URL });
    const empty = await c.next();
    expect(empty.resources).toEqual([]);
    c.ack(empty);
    await store.apply({
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'allow-web', namespace: 'default' },
      spec: { selector: { matchLabels: { app: 'web' } }, rules: [{ from: [{ source: { namespaces: ['default'] } }] }] },
    });
    const got = await c.next();
    expect(names([got])).toEqual(['default/allow-web']);
  });

  it('logs and counts a NACK, does not resend the rejected version, and keeps the stream usable', async () => {
    const registry = new Registry();
    const { logger, lines } = capturingLogger();
    const { store, connect } = await setup({ registry, logger });
    const c = connect();
    c.send({ typeUrl: ADDRESS_TYPE_URL });
    c.ack(await c.next());

    await store.apply(workload('web-3', '10.200.1.7', { app: 'web' }));
    const bad = await c.next();
    c.send({ typeUrl: ADDRESS_TYPE_URL, responseNonce: bad.nonce, errorDetail: { code: 3, message: 'web-3 looks wrong' } });
    await c.expectNothing(300);

    const nackLog = lines().find((l) => typeof l.msg === 'string' && l.msg.includes('NACK'));
    expect(nackLog).toMatchObject({ error: 'web-3 looks wrong', code: 3, typeUrl: ADDRESS_TYPE_URL });
    expect(String((nackLog!.rejected as string[])[0])).toMatch(/^Workload\/default\/web-3@/);
    const nacks = await registry.getSingleMetric('nodemesh_xds_nacks_total')!.get();
    expect(nacks.values.find((v) => v.labels.type_url === ADDRESS_TYPE_URL)?.value).toBe(1);

    // The stream still works: a fixed web-3 and other changes arrive.
    await store.apply(workload('web-3', '10.200.1.8', { app: 'web' }));
    const fixed = await c.next();
    expect(names([fixed])).toEqual(['Workload/default/web-3']);
    c.ack(fixed);
    const acks = await registry.getSingleMetric('nodemesh_xds_acks_total')!.get();
    expect(acks.values.find((v) => v.labels.type_url === ADDRESS_TYPE_URL)?.value).toBeGreaterThanOrEqual(1);
    // Both pushes that carried a store change were timed from the change.
    const latency = await (registry.getSingleMetric('nodemesh_xds_push_latency_seconds') as Histogram).get();
    const count = latency.values.find((v) => v.metricName === 'nodemesh_xds_push_latency_seconds_count' && v.labels.type_url === ADDRESS_TYPE_URL);
    expect(count?.value).toBe(2);
  });

  it('on reconnect with initial_resource_versions resends only what changed and removes what is gone', async () => {
    const { store, connect } = await setup();
    const c1 = connect();
    c1.send({ typeUrl: ADDRESS_TYPE_URL });
    const all = await c1.next();
    c1.ack(all);
    const versions = Object.fromEntries(all.resources.map((r) => [r.name, r.version]));
    c1.close();

    await store.apply(workload('web-2', '10.200.1.66', { app: 'web' }));
    await store.delete({ kind: 'Workload', namespace: 'default', name: 'web-1' });
    await store.apply(workload('web-9', '10.200.1.9', { app: 'other' }));
    await new Promise((r) => setTimeout(r, 50));

    const c2 = connect();
    c2.send({ typeUrl: ADDRESS_TYPE_URL, initialResourceVersions: versions });
    const diff = await c2.next();
    expect(names([diff])).toEqual(['Workload/default/web-2', 'Workload/default/web-9']);
    expect(diff.removedResources).toEqual(['Workload/default/web-1']);
    // The Service is unchanged (web-1's removal does not change the Service itself): not resent.
    c2.ack(diff);
    await c2.expectNothing(200);

    // A client that is already up to date gets one empty response, so it knows it is in sync.
    const current = { ...versions };
    delete current['Workload/default/web-1'];
    for (const r of diff.resources) current[r.name] = r.version;
    const c3 = connect();
    c3.send({ typeUrl: ADDRESS_TYPE_URL, initialResourceVersions: current });
    const inSync = await c3.next();
    expect(inSync.resources).toEqual([]);
    expect(inSync.removedResources).toEqual([]);
  });

  it('serves named subscriptions, unsubscribe and resubscribe', async () => {
    const { store, connect } = await setup();
    const c = connect();
    c.send({ typeUrl: ADDRESS_TYPE_URL, resourceNamesSubscribe: ['Workload/default/web-1', 'Workload/default/nope'] });
    const first = await c.next();
    expect(names([first])).toEqual(['Workload/default/web-1']);
    expect(first.removedResources).toEqual(['Workload/default/nope']);
    c.ack(first);

    // Changes to names not subscribed to are not sent.
    await store.apply(workload('web-2', '10.200.1.60', { app: 'web' }));
    await c.expectNothing(200);

    c.send({ typeUrl: ADDRESS_TYPE_URL, resourceNamesUnsubscribe: ['Workload/default/web-1'] });
    await store.apply(workload('web-1', '10.200.1.50', { app: 'web' }));
    await c.expectNothing(200);

    c.send({ typeUrl: ADDRESS_TYPE_URL, resourceNamesSubscribe: ['Workload/default/web-1', 'Workload/default/web-2'] });
    const again = await c.next();
    expect(names([again])).toEqual(['Workload/default/web-1', 'Workload/default/web-2']);
    const decoded = Address.decode(again.resources.find((r) => r.name === 'Workload/default/web-1')!.resource!.value);
    expect(decoded.type?.$case === 'workload' && [...decoded.type.value.addresses[0]!]).toEqual([10, 200, 1, 50]);
  });

  it('gives a client that stopped reading one up-to-date response instead of a backlog', async () => {
    const { store, address } = await setup();
    // Enough state that the first response alone is larger than the HTTP/2 window.
    await store.applyAll(Array.from({ length: 2000 }, (_, i) => workload(`bulk-${i}`, `10.201.${i >> 8}.${i & 255}`, { app: 'bulk' })));
    // A raw HTTP/2 gRPC client, so that "not reading" really stops HTTP/2 flow control.
    const session = http2.connect(`http://${address}`);
    cleanup(() => void session.destroy());
    const stream = session.request({
      ':method': 'POST',
      ':path': '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const body = DeltaDiscoveryRequest.encode(DeltaDiscoveryRequest.fromPartial({ node: { id: 'slow' }, typeUrl: ADDRESS_TYPE_URL })).finish();
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(body.length, 1);
    stream.write(Buffer.concat([prefix, body]));
    stream.pause();
    await new Promise((r) => setTimeout(r, 200));
    const writes = 60;
    for (let i = 0; i < writes; i++) {
      await store.apply(workload('web-1', `10.200.2.${i + 1}`, { app: 'web' }));
      await new Promise((r) => setImmediate(r));
    }
    // Now read everything that comes.
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.resume();
    await new Promise((r) => setTimeout(r, 800));
    const data = Buffer.concat(chunks);
    const responses: DeltaDiscoveryResponse[] = [];
    for (let at = 0; at + 5 <= data.length; ) {
      const len = data.readUInt32BE(at + 1);
      responses.push(DeltaDiscoveryResponse.decode(data.subarray(at + 5, at + 5 + len)));
      at += 5 + len;
    }
    const versions = new Map<string, string>();
    for (const r of responses) {
      for (const res of r.resources) versions.set(res.name, res.version);
      for (const name of r.removedResources) versions.delete(name);
    }
    // Every write changed web-1, but the client was not sent one response per write...
    expect(responses.length).toBeGreaterThan(1);
    expect(responses.length).toBeLessThan(10);
    expect(versions.size).toBe(2003);
    // ...and what it has is the newest state.
    const web1 = responses
      .flatMap((r) => r.resources)
      .filter((r) => r.name === 'Workload/default/web-1')
      .at(-1)!;
    const decoded = Address.decode(web1.resource!.value);
    expect(decoded.type?.$case === 'workload' && [...decoded.type.value.addresses[0]!]).toEqual([10, 200, 2, writes]);
  });

  it('ends a request without a type URL with INVALID_ARGUMENT', async () => {
    const { connect } = await setup();
    const c = connect();
    c.send({ typeUrl: '' });
    await expect(c.next()).rejects.toThrow(/3 .*type_url/);
  });

  it('counts connected clients', async () => {
    const registry = new Registry();
    const { connect } = await setup({ registry });
    const a = connect();
    const b = connect();
    a.send({ typeUrl: ADDRESS_TYPE_URL });
    b.send({ typeUrl: ADDRESS_TYPE_URL });
    await a.next();
    await b.next();
    const gauge = async () => (await registry.getSingleMetric('nodemesh_xds_connected_clients')!.get()).values[0]?.value;
    expect(await gauge()).toBe(2);
    a.close();
    for (let i = 0; i < 50 && (await gauge()) !== 1; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await gauge()).toBe(1);
  });
});

describe('the 15012 server', () => {
  it('serves ADS and the certificate service over TLS with a serving certificate from the CA', async () => {
    const testCa = await openTestCa('xds-tls');
    cleanup(() => testCa.remove());
    const store = new MemoryStore();
    await store.apply(workload('web-1', '10.200.1.5'));
    let grpcSide: ControlGrpc | undefined;
    try {
      grpcSide = await serveTls(store, testCa);
      expect(grpcSide.trustBundlePem).toContain('BEGIN CERTIFICATE');
      const creds = grpc.credentials.createSsl(Buffer.from(grpcSide.trustBundlePem!));
      const c = new DeltaClient(`localhost:${grpcSide.ports.tls}`, creds);
      cleanup(() => c.close());
      c.send({ typeUrl: ADDRESS_TYPE_URL });
      expect(names([await c.next()])).toEqual(['Workload/default/web-1']);

      // A client that does not trust the CA cannot connect.
      const untrusting = new DeltaClient(`localhost:${grpcSide.ports.tls}`, grpc.credentials.createSsl());
      cleanup(() => untrusting.close());
      untrusting.send({ typeUrl: ADDRESS_TYPE_URL });
      await expect(untrusting.next()).rejects.toThrow(/stream failed: 14/);

      // The certificate service is mounted next to ADS on the TLS port.
      const caClient = new grpc.Client(`localhost:${grpcSide.ports.tls}`, creds);
      cleanup(() => caClient.close());
      const status = await new Promise<grpc.status>((resolve) => {
        caClient.makeUnaryRequest(
          '/nodemesh.ca.v1.CertificateService/CreateCertificate',
          (x: Buffer) => x,
          (x: Buffer) => x,
          Buffer.alloc(0),
          (err) => resolve(err ? err.code : grpc.status.OK),
        );
      });
      expect(status).toBe(grpc.status.UNAUTHENTICATED);
    } finally {
      await grpcSide?.stop();
      await store.close();
    }
  });

  it('refuses plaintext xDS on a non-loopback address unless enabled', async () => {
    const server = new ControlGrpcServer({
      source: new SharedCache([ADDRESS_TYPE_URL]),
      plaintext: { host: '0.0.0.0', port: 0 },
      registry: new Registry(),
      logger: pino({ level: 'silent' }),
    });
    await expect(server.start()).rejects.toThrow(/refusing plaintext xDS on 0.0.0.0/);
  });
});
