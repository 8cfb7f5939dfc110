// Shared set-up for the native HBONE engine's tests: a captured connection pair as the node proxy
// holds it, a native HBONE server in front of a loopback upstream, and tunnels from the native client.
import { readdirSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { allow, type Decision, type HboneServerOptions, type TunnelRequest } from '../../common/hbone/server';
import { connectUpstream } from '../../common/hbone/upstream';
import type { NativeStreamResult } from '../../native/hbone';
import type { NativeHboneClient } from '../../native/hbone-client';
import { NativeHboneServer } from '../../native/hbone-server';
import { quietLogger, startMesh, tcpServer, type Mesh } from './fixture';

/** A captured connection, as the node proxy holds it: `app` is the workload's end, `captured` the proxy's. */
export async function capturedPair(): Promise<{ app: Socket; captured: Socket; close(): void }> {
  let accept!: (s: Socket) => void;
  const accepted = new Promise<Socket>((r) => (accept = r));
  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => accept(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const app = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, allowHalfOpen: true });
  app.on('error', () => undefined);
  const captured = await accepted;
  server.close();
  return { app, captured, close: () => app.destroy() };
}

/** What the app reads until its connection ends: bytes, or the error that ended it. */
export function readAll(s: Socket): Promise<{ data: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    s.on('data', (c: Buffer) => parts.push(c));
    s.once('end', () => resolve({ data: Buffer.concat(parts) }));
    s.once('error', (e: NodeJS.ErrnoException) => resolve({ data: Buffer.concat(parts), error: e.code ?? e.message }));
  });
}

export function sendAll(s: Socket, data: Buffer): void {
  let off = 0;
  const pump = (): void => {
    while (off < data.length) {
      const end = Math.min(off + 256 * 1024, data.length);
      const ok = s.write(data.subarray(off, end));
      off = end;
      if (!ok) {
        s.once('drain', pump);
        return;
      }
    }
    s.end();
  };
  pump();
}

export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

export interface Tunnel {
  app: Socket;
  ended: Promise<NativeStreamResult>;
  status: Promise<number>;
  /** The engine's live counts (`out`: what left the captured socket towards the peer). */
  bytes(): { out: number; in: number } | undefined;
}

export async function nativeTunnel(
  client: NativeHboneClient,
  mesh: Pick<Mesh, 'openOptions'>,
  extra: Parameters<Mesh['openOptions']>[0] = {},
): Promise<Tunnel> {
  const pair = await capturedPair();
  let ended!: (r: NativeStreamResult) => void;
  let answered!: (s: number) => void;
  const t: Tunnel = { app: pair.app, ended: new Promise((r) => (ended = r)), status: new Promise((r) => (answered = r)), bytes: () => undefined };
  const stream = await client.tunnel(mesh.openOptions(extra), pair.captured, { response: answered, end: ended });
  t.bytes = () => stream.bytes();
  return t;
}

/** A native HBONE server in front of an upstream, like startMesh's. */
export async function nativeServer(
  upstream: (s: Socket) => void,
  decide?: (r: TunnelRequest, c: () => Promise<Decision>) => Promise<Decision>,
  options: Partial<HboneServerOptions> = {},
) {
  const mesh = await startMesh({ upstream });
  const requests: TunnelRequest[] = [];
  const server = new NativeHboneServer({
    credentials: { certChain: mesh.serverCreds.certChain, key: mesh.serverCreds.key, trustBundle: mesh.ca.bundle },
    logger: quietLogger,
    ...options,
    handler: async (r) => {
      requests.push(r);
      const c = async (): Promise<Decision> => allow(await connectUpstream({ host: '127.0.0.1', port: mesh.upstreamPort, family: 4 }));
      return decide ? decide(r, c) : c();
    },
  });
  const listener = await tcpServer((s) => server.serveConnection(s, 'test'));
  const destination = `127.0.0.1:${listener.port}`;
  return {
    mesh,
    server,
    requests,
    openOptions: (extra: Parameters<Mesh['openOptions']>[0] = {}) => mesh.openOptions({ destination, ...extra }),
    close: async () => {
      await server.close(100);
      await listener.close();
      await mesh.close();
    },
  };
}
