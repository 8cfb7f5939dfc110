// The tunnel in the in-pod model: the HBONE server listens on a socket opened inside the
// destination pod's netns and reaches the app from inside it; the client dials from inside the
// source pod's netns. Two throwaway netns joined by a veth pair, nothing else.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { HboneClient } from '../../common/hbone/client';
import { TunnelRefusedError } from '../../common/hbone/errors';
import { HboneServer, allow, deny, type TunnelRequest } from '../../common/hbone/server';
import { createTestCa, type IssuedCredentials, type TestCa } from '../../common/hbone/testing/pki';
import { connectInNetns, listenInNetns } from '../../native';
import { Scratch } from '../kernel/support';
import { privilegedDescribe } from '../support/privileged';
import { scaled } from '../support/speed';
import { quietLogger, roundTrip, sha256 } from './fixture';

const SRC_IP = '10.243.0.1';
const DST_IP = '10.243.0.2';

privilegedDescribe('kernel', 'HBONE between two pod netns (listen and dial inside them)', () => {
  const scratch = new Scratch('nm-khb');
  let srcNs = '';
  let dstNs = '';
  let ca: TestCa;
  let serverCreds: IssuedCredentials;
  let clientCreds: IssuedCredentials;
  let server: HboneServer;
  let app: Server;
  // a slow machine (a VM under TCG) answers a PING later than the default 3 s allows
  const client = new HboneClient({ logger: quietLogger, pingTimeoutMs: scaled(3000) });
  const requests: TunnelRequest[] = [];

  beforeAll(async () => {
    srcNs = scratch.netns('src');
    dstNs = scratch.netns('dst');
    scratch.veth(`nm-khb${process.pid % 100000}`, { netns: srcNs, ip: SRC_IP }, { netns: dstNs, ip: DST_IP });

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
      handler: async (r) => {
        requests.push(r);
        if (r.peerSpiffeId !== clientCreds.spiffeId) return deny(403, 'only sa-a');
        return allow(await connectInNetns(dstNs, { host: r.target.host, port: r.target.port }));
      },
    });
    await server.listen({ fd: listenInNetns(dstNs, { host: DST_IP, port: 15008 }) });
  });

  afterAll(async () => {
    client.destroy();
    await server?.close(100);
    await new Promise((r) => (app ? app.close(r) : r(undefined)));
    scratch.cleanup();
  });

  const open = (creds = clientCreds) =>
    client.open({
      source: { certChain: creds.certChain, key: creds.key },
      trustBundle: ca.bundle,
      destination: `${DST_IP}:15008`,
      expectedIdentity: serverCreds.spiffeId,
      authority: `${DST_IP}:8080`,
      sourceAddress: SRC_IP,
      dial: (host, port) => connectInNetns(srcNs, { host, port }),
    });

  it('carries 8 MiB intact from the source netns to the app in the destination netns', async () => {
    const data = randomBytes(8 * 1024 * 1024);
    const back = await roundTrip(await open(), data);
    expect(sha256(back)).toBe(sha256(data));
  });

  it('sees the source pod address and identity on the destination side', async () => {
    const s = await open();
    await roundTrip(s, Buffer.from('who'));
    expect(server.stats().connectionsAccepted).toBe(1); // one pooled connection for both tunnels
    const r = requests.at(-1);
    expect(r?.peerSpiffeId).toBe(clientCreds.spiffeId);
    expect(r?.remoteAddress.address).toBe(SRC_IP); // the connection came from the source netns
    expect(r?.localAddress).toEqual({ address: DST_IP, port: 15008 });
  });

  it('refuses another identity with 403', async () => {
    const other = await ca.issue('ns-c', 'sa-c');
    const err = await open(other).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TunnelRefusedError);
    expect((err as TunnelRefusedError).status).toBe(403);
  });
});
