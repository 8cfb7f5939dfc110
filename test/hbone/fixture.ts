// Shared set-up for the tunnel tests: a test CA, TCP upstreams on loopback, an HBONE server whose
// handler connects to them, and a client. Everything listens on 127.0.0.1 with ephemeral ports.
import { createHash } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import { HboneClient, type HboneClientOptions, type OpenOptions } from '../../common/hbone/client';
import { HboneServer, allow, type Decision, type HboneServerOptions, type TunnelRequest } from '../../common/hbone/server';
import { connectUpstream } from '../../common/hbone/upstream';
import { createTestCa, type IssuedCredentials, type TestCa } from '../../common/hbone/testing/pki';
import { createLogger } from '../../common/log';

export const quietLogger = createLogger('hbone-test', process.env.NODEMESH_LOG_LEVEL ?? 'silent');

/** A TCP server on loopback; `onSocket` gets every accepted socket (allowHalfOpen). */
export async function tcpServer(onSocket: (s: Socket) => void): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    onSocket(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Echoes every byte back and ends its side when the client ended its side. */
export const echo = (s: Socket): void => {
  s.pipe(s);
};

/** Reads until end and then answers "<byte count> <sha256 hex>" and ends (half-close check). */
export const digestReply = (s: Socket): void => {
  const h = createHash('sha256');
  let n = 0;
  s.on('data', (c: Buffer) => {
    n += c.length;
    h.update(c);
  });
  s.on('end', () => s.end(`${n} ${h.digest('hex')}`));
};

/** Writes `data` to a duplex in chunks, ends it, and resolves with everything read back. */
export function roundTrip(d: Duplex, data: Buffer, chunk = 256 * 1024): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    d.on('data', (c: Buffer) => parts.push(c));
    d.once('end', () => resolve(Buffer.concat(parts)));
    d.once('error', reject);
    let off = 0;
    const pump = (): void => {
      while (off < data.length) {
        const end = Math.min(off + chunk, data.length);
        const ok = d.write(data.subarray(off, end));
        off = end;
        if (!ok) {
          d.once('drain', pump);
          return;
        }
      }
      d.end();
    };
    pump();
  });
}

/** Polls `check` until it returns true or `timeoutMs` passed; resolves with the last result. */
export async function eventually(check: () => boolean, timeoutMs = 3000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export interface Mesh {
  ca: TestCa;
  serverCreds: IssuedCredentials;
  clientCreds: IssuedCredentials;
  server: HboneServer;
  client: HboneClient;
  destination: string;
  upstreamPort: number;
  requests: TunnelRequest[];
  /** Options to open a tunnel to the upstream as the client workload. */
  openOptions(extra?: Partial<OpenOptions>): OpenOptions;
  close(): Promise<void>;
}

export interface MeshOptions {
  upstream?: (s: Socket) => void;
  /** Decide per request; default: connect to the upstream. */
  decide?: (r: TunnelRequest, connect: () => Promise<Decision>) => Promise<Decision>;
  server?: Partial<HboneServerOptions>;
  client?: HboneClientOptions;
  ca?: TestCa;
}

/** Client workload ns-a/sa-client -> HBONE server ns-b/sa-server -> upstream on loopback. */
export async function startMesh(o: MeshOptions = {}): Promise<Mesh> {
  const ca = o.ca ?? (await createTestCa('cluster.local'));
  const serverCreds = await ca.issue('ns-b', 'sa-server');
  const clientCreds = await ca.issue('ns-a', 'sa-client');
  const up = await tcpServer(o.upstream ?? echo);
  const requests: TunnelRequest[] = [];
  const server = new HboneServer({
    credentials: { certChain: serverCreds.certChain, key: serverCreds.key, trustBundle: ca.bundle },
    logger: quietLogger,
    ...o.server,
    handler: async (r) => {
      requests.push(r);
      const connect = async (): Promise<Decision> => allow(await connectUpstream({ host: '127.0.0.1', port: up.port, family: 4 }));
      return o.decide ? o.decide(r, connect) : connect();
    },
  });
  const ep = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = new HboneClient({ logger: quietLogger, ...o.client });
  const destination = `127.0.0.1:${ep.port}`;
  return {
    ca,
    serverCreds,
    clientCreds,
    server,
    client,
    destination,
    upstreamPort: up.port,
    requests,
    openOptions: (extra = {}) => ({
      source: { certChain: clientCreds.certChain, key: clientCreds.key },
      trustBundle: ca.bundle,
      destination,
      expectedIdentity: serverCreds.spiffeId,
      authority: `127.0.0.1:${up.port}`,
      ...extra,
    }),
    close: async () => {
      client.destroy();
      await server.close(100);
      await up.close();
    },
  };
}

/** TLS options for a raw client of `mesh`'s HBONE server: its address, the mesh CA, the client's credentials, ALPN h2. */
export function meshClientTls(mesh: Mesh): ConnectionOptions {
  const [host, port] = mesh.destination.split(':');
  return {
    host,
    port: Number(port),
    ca: mesh.ca.bundle.pem,
    cert: mesh.clientCreds.certChain,
    key: mesh.clientCreds.key,
    checkServerIdentity: () => undefined,
    ALPNProtocols: ['h2'],
  };
}
