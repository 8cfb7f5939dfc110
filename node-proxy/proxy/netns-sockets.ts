// How the node proxy gets sockets inside a workload's network namespace: listeners for capture
// (15001, 15006) and upstream connections that leave from the workload's netns. The node proxy
// itself stays in its own netns and cgroup, so its sockets are never captured by the workload's
// cgroup programs.
import type { Server, Socket } from 'node:net';
import type { RawSocket } from '../../common/hbone/raw-socket';
import type { AcceptedConnection, CaptureListener } from '../../native/netns-accept';

export interface NetnsSockets {
  /** A listening server bound to host:port inside the netns at `netnsPath`. */
  listen(netnsPath: string, host: string, port: number, onConnection: (socket: Socket) => void): Promise<Server>;
  /**
   * A listener bound to host:port inside the netns whose connections are accepted by the addon and
   * reach `onConnection` as bare fds with their client address and, given the capture map's fd,
   * their original destination (native/netns-accept.ts).
   */
  listenCaptured(
    netnsPath: string,
    host: string,
    port: number,
    o: { netnsCookie: bigint; originalsMapFd?: number },
    onConnection: (c: AcceptedConnection) => void,
    onError: (err: Error) => void,
  ): CaptureListener;
  /** A connected TCP socket to host:port, made from inside the netns at `netnsPath`. */
  connect(netnsPath: string, host: string, port: number): Promise<Socket>;
  /**
   * The same connection as a bare fd for the native HBONE engine or the kernel splice, which take
   * it without a net.Socket (common/hbone/raw-socket.ts); the caller owns the fd until it hands it
   * over. `noDelay`: TCP_NODELAY, set before the connect (the engine sets it itself).
   */
  connectRaw(netnsPath: string, host: string, port: number, o?: { noDelay?: boolean }): Promise<RawSocket>;
  /** The file descriptor behind a listening server (to register it in a sockhash). */
  serverFd(server: Server): number;
  /**
   * Lets go of the netns: whatever this process keeps there to make sockets quickly (the addon's
   * worker thread and its ready sockets) stops now, so a deleted pod's netns is not kept alive.
   * Sockets already made are not affected; a later listen/connect there starts afresh.
   */
  release(netnsPath: string): void;
}
