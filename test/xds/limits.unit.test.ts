// 15012 is reachable from every pod: TCP connections that never start TLS are closed after the
// handshake timeout (counted in nodemesh_listener_timeouts_total), TLS connections that make no
// call after the idle timeout, while a node with an open ADS stream stays connected.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeTokens } from '../../control/ca/tokens';
import { ControlPlane } from '../../control/control-plane';
import { ADDRESS_TYPE_URL } from '../../control/workload/publisher';
import { createXdsComponent } from '../../control/xds/component';
import { DeltaClient } from './delta-client';

const closedAfter = (s: Socket): Promise<number> => {
  const t0 = performance.now();
  return new Promise((resolve) => {
    s.on('error', () => undefined);
    s.resume();
    s.once('close', () => resolve(performance.now() - t0));
  });
};

describe('15012 handshake and idle timeouts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nm-xds-limits-'));
  const xds = createXdsComponent({
    env: {
      NODEMESH_XDS_LISTEN: '127.0.0.1:0',
      NODEMESH_XDS_PLAINTEXT_LISTEN: 'off',
      NODEMESH_XDS_REQUIRE_NODE_TOKEN: '1',
      NODEMESH_XDS_HANDSHAKE_TIMEOUT_MS: '400',
      NODEMESH_XDS_IDLE_TIMEOUT_MS: '1000',
    },
  });
  const cp = new ControlPlane({ dataDir: dir, listen: '127.0.0.1:0', logger: pino({ level: 'silent' }), components: [xds] });
  let port: number;
  beforeAll(async () => {
    await cp.start();
    port = xds.grpc!.ports.tls!;
  });
  afterAll(async () => {
    await cp.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('closes 50 TCP connections that never start TLS, and counts them', async () => {
    const waited = await Promise.all(Array.from({ length: 50 }, () => closedAfter(tcpConnect({ host: '127.0.0.1', port }))));
    expect(Math.min(...waited)).toBeGreaterThanOrEqual(350);
    expect(Math.max(...waited)).toBeLessThan(5_000);
    const text = await cp.registry.metrics();
    expect(text).toMatch(/nodemesh_listener_timeouts_total\{listener="xds-tls",kind="handshake"\} 50/);
  });

  it('closes a TLS connection that makes no call, keeps one with an open ADS stream', async () => {
    const bundle = xds.grpc!.trustBundlePem!;
    const idle = await new Promise<Socket>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca: bundle, servername: 'localhost', ALPNProtocols: ['h2'] }, () => resolve(s));
    });
    const idleClosed = closedAfter(idle);
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${NodeTokens.forDataDir(dir).issue('node1')}`);
    const node = new DeltaClient(`localhost:${port}`, grpc.credentials.createSsl(Buffer.from(bundle)), {}, md);
    try {
      node.send({ typeUrl: ADDRESS_TYPE_URL, node: { id: 'node-proxy~node1' } as never });
      node.ack(await node.next());
      const waited = await idleClosed;
      expect(waited).toBeGreaterThanOrEqual(700);
      expect(waited).toBeLessThan(6_000);
      await new Promise((r) => setTimeout(r, 1_500)); // past the idle timeout again: the stream is a call in progress
      expect(node.error).toBeUndefined();
      expect(node.ended).toBe(false);
    } finally {
      node.close();
    }
  });
});
