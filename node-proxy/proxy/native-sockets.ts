// NetnsSockets over the native addon: the socket is created inside the workload's netns by the
// addon and handed to Node as an fd; from then on it is an ordinary net.Server / net.Socket.
import { createServer, type Server } from 'node:net';
import { rawSocket } from '../../common/hbone/raw-socket';
import { connectFdInNetns, connectInNetns, fdOf, listenInNetns, releaseNetns } from '../../native/netns';
import { listenCaptured } from '../../native/netns-accept';
import { DEFAULT_NETNS_CONNECT_TIMEOUT_MS } from './inbound-limits';
import type { NetnsSockets } from './netns-sockets';

/** The addon's sockets with connects bounded by `connectTimeoutMs`. */
export function nativeSocketsWith(o: { connectTimeoutMs: number }): NetnsSockets {
  return {
    ...nativeSockets,
    async connect(netnsPath, host, port) {
      const s = await connectInNetns(netnsPath, { host, port, timeoutMs: o.connectTimeoutMs, allowHalfOpen: true });
      s.setNoDelay(true);
      return s;
    },
    async connectRaw(netnsPath, host, port, opts) {
      return rawSocket(await connectFdInNetns(netnsPath, { host, port, timeoutMs: o.connectTimeoutMs, noDelay: opts?.noDelay }));
    },
  };
}

export const nativeSockets: NetnsSockets = {
  listen(netnsPath, host, port, onConnection) {
    const fd = listenInNetns(netnsPath, { host, port });
    const server = createServer({ allowHalfOpen: true, noDelay: true }, onConnection);
    return new Promise<Server>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ fd }, () => {
        server.off('error', reject);
        resolve(server);
      });
    });
  },
  listenCaptured(netnsPath, host, port, o, onConnection, onError) {
    return listenCaptured(netnsPath, { host, port, ...o }, onConnection, onError);
  },
  async connect(netnsPath, host, port) {
    // passthrough and HBONE splices forward a FIN as a FIN: the socket must stay half open
    const s = await connectInNetns(netnsPath, { host, port, timeoutMs: DEFAULT_NETNS_CONNECT_TIMEOUT_MS, allowHalfOpen: true });
    s.setNoDelay(true);
    return s;
  },
  async connectRaw(netnsPath, host, port, o) {
    // the engine sets O_NONBLOCK and TCP_NODELAY itself; the kernel splice asks for TCP_NODELAY
    return rawSocket(await connectFdInNetns(netnsPath, { host, port, timeoutMs: DEFAULT_NETNS_CONNECT_TIMEOUT_MS, noDelay: o?.noDelay }));
  },
  serverFd(server) {
    return fdOf(server);
  },
  release(netnsPath) {
    releaseNetns(netnsPath);
  },
};
