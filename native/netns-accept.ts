// Captured connections accepted in the addon (native/src/netns_accept.cc): a listener opened inside
// a workload's netns whose connections reach JavaScript as bare fds with the client's address and,
// when the capture map is given, the original destination taken from it in the same step. A
// captured connection that goes on to the native HBONE engine never becomes a net.Socket.
import type { AddressInfo } from 'node:net';
import { binding, call, toNativeError } from './binding';
import { listenInNetns, type ListenInNetnsOptions } from './netns';

export interface AcceptedConnection {
  /** The accepted socket (non-blocking, close-on-exec, TCP_NODELAY). The handler owns it: hand it over or close it. */
  readonly fd: number;
  /** The client's address and port as the accepted socket shows them (the app's socket). */
  readonly client: { readonly address: string; readonly port: number };
  /** True when the listener looked the original destination up (it was given the capture map). */
  readonly originalTaken: boolean;
  /** The original destination capture recorded (removed from the map), if any. */
  readonly originalDestination?: { readonly address: string; readonly port: number };
}

export interface CaptureListenOptions extends ListenInNetnsOptions {
  /** The netns cookie the capture map keys its connections by. */
  readonly netnsCookie: bigint;
  /** The fd of the original-destination map (nm_orig_dst); the listener keeps a duplicate. */
  readonly originalsMapFd?: number;
}

/** A listening socket in a workload's netns whose connections are accepted by the addon. */
export class CaptureListener {
  private raw: { close(): void; fd(): number } | undefined;
  private readonly where: AddressInfo;

  constructor(raw: { close(): void; fd(): number }, o: CaptureListenOptions) {
    this.raw = raw;
    this.where = { address: o.host, family: o.host.includes(':') ? 'IPv6' : 'IPv4', port: o.port };
  }

  /** Where it listens (as net.Server's address()). */
  address(): AddressInfo {
    return this.where;
  }

  /** The listening fd (-1 once closed). */
  get fd(): number {
    return this.raw ? this.raw.fd() : -1;
  }

  /**
   * Stops accepting and closes the listening socket at once; connections already accepted are
   * not affected. `done` is called (asynchronously) for net.Server's close(cb) shape.
   */
  close(done?: () => void): void {
    this.raw?.close();
    this.raw = undefined;
    if (done) setImmediate(done);
  }
}

/**
 * Listens on host:port inside the netns at `netnsPath`; each accepted connection goes to
 * `onConnection` (synchronously, from the event loop), accept failures (out of fds: accepting
 * pauses 100 ms) to `onError`.
 */
export function listenCaptured(
  netnsPath: string,
  o: CaptureListenOptions,
  onConnection: (c: AcceptedConnection) => void,
  onError: (err: Error) => void,
): CaptureListener {
  // no Nagle on any captured connection: set on the listener, every accepted socket inherits it
  const fd = listenInNetns(netnsPath, { ...o, noDelay: true });
  const taken = o.originalsMapFd !== undefined && o.originalsMapFd >= 0;
  try {
    const raw = new (binding().CaptureAcceptor)(
      fd,
      taken ? (o.originalsMapFd as number) : -1,
      o.netnsCookie,
      (cfd, address, port, dstAddress, dstPort) =>
        onConnection({
          fd: cfd,
          client: { address, port },
          originalTaken: taken,
          originalDestination: dstAddress === undefined ? undefined : { address: dstAddress, port: dstPort },
        }),
      (err) => onError(toNativeError(err) as Error),
    );
    return new CaptureListener(raw, o);
  } catch (err) {
    call((b) => b.closeFd(fd));
    throw toNativeError(err);
  }
}

/** Closes an accepted socket with a reset (a refused captured connection). */
export function resetFd(fd: number): void {
  call((b) => b.resetFd(fd));
}
