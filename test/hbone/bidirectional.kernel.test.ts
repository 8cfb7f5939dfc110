// Bulk bytes both ways at once through HBONE, between two netns whose TCP buffers are small (per
// netns sysctls): far less than the HTTP/2 windows admit in flight. node:http2 stops reading its
// socket while one of its writes is pending, so without the node proxy's send buffer reservation
// (node-proxy/proxy/tunnel-socket.ts) both ends soon wait on each other's reading for good: no byte
// and no PING answer crosses again and the pool resets the tunnels. The reservation is applied
// here where the node proxy applies it: on the dialled socket and on the accepted one.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { HboneClient } from '../../common/hbone/client';
import { HboneServer, allow } from '../../common/hbone/server';
import { createTestCa, type IssuedCredentials, type TestCa } from '../../common/hbone/testing/pki';
import { connectInNetns, listenInNetns } from '../../native';
import { reserveTunnelSendBuffer } from '../../node-proxy/proxy/tunnel-socket';
import { Scratch, sh } from '../kernel/support';
import { privilegedDescribe } from '../support/privileged';
import { scaled } from '../support/speed';
import { quietLogger, roundTrip, sha256 } from './fixture';

const SRC_IP = '10.243.1.1';
const DST_IP = '10.243.1.2';
// min / default / max bytes; the HBONE windows admit 16 MiB per connection, 4 MiB per stream
const SMALL_BUFFERS = '4096 32768 131072';

privilegedDescribe('kernel', 'HBONE carries bulk bytes both ways at once over small TCP buffers', () => {
  const scratch = new Scratch('nm-kbd');
  let srcNs = '';
  let dstNs = '';
  let ca: TestCa;
  let serverCreds: IssuedCredentials;
  let clientCreds: IssuedCredentials;
  let server: HboneServer;
  let app: Server;
  let hboneListener: Server;
  const client = new HboneClient({ logger: quietLogger, pingTimeoutMs: scaled(3000) });

  beforeAll(async () => {
    srcNs = scratch.netns('src');
    dstNs = scratch.netns('dst');
    scratch.veth(`nm-kbd${process.pid % 100000}`, { netns: srcNs, ip: SRC_IP }, { netns: dstNs, ip: DST_IP });
    for (const ns of [srcNs, dstNs].map((p) => p.split('/').pop() as string))
      for (const key of ['net.ipv4.tcp_rmem', 'net.ipv4.tcp_wmem']) sh('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `${key}=${SMALL_BUFFERS}`]);

    ca = await createTestCa('cluster.local');
    serverCreds = await ca.issue('ns-b', 'sa-b');
    clientCreds = await ca.issue('ns-a', 'sa-a');
    app = createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      s.pipe(s);
    });
    app.listen({ fd: listenInNetns(dstNs, { host: DST_IP, port: 8080 }) });
    server = new HboneServer({
      credentials: { certChain: serverCreds.certChain, key: serverCreds.key, trustBundle: ca.bundle },
      logger: quietLogger,
      handler: async (r) => allow(await connectInNetns(dstNs, { host: r.target.host, port: r.target.port, allowHalfOpen: true })),
    });
    // as the node proxy serves a workload's 15008: its own listener hands connections over
    hboneListener = createServer({ noDelay: true }, (s) => server.serveConnection(reserveTunnelSendBuffer(s), 'w'));
    await new Promise<void>((r) => hboneListener.listen({ fd: listenInNetns(dstNs, { host: DST_IP, port: 15008 }) }, r));
  });

  afterAll(async () => {
    client.destroy();
    await server?.close(100);
    await new Promise((r) => (hboneListener ? hboneListener.close(r) : r(undefined)));
    await new Promise((r) => (app ? app.close(r) : r(undefined)));
    scratch.cleanup();
  });

  it(
    'three 16 MiB echoes at once on one HBONE connection arrive intact',
    async () => {
      const echoes = [0, 1, 2].map(async () => {
        const stream = await client.open({
          source: { certChain: clientCreds.certChain, key: clientCreds.key },
          trustBundle: ca.bundle,
          destination: `${DST_IP}:15008`,
          expectedIdentity: serverCreds.spiffeId,
          authority: `${DST_IP}:8080`,
          sourceAddress: SRC_IP,
          dial: async (host, port) => reserveTunnelSendBuffer(await connectInNetns(srcNs, { host, port, allowHalfOpen: true })),
        });
        const data = randomBytes(16 << 20);
        const back = await roundTrip(stream, data);
        return back.length === data.length && sha256(back) === sha256(data);
      });
      expect(await Promise.all(echoes)).toEqual([true, true, true]);
      expect(client.connectionCount()).toBe(1);
    },
    scaled(60_000),
  );
});
