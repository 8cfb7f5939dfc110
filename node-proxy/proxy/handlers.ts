// What happens to one captured connection in passthrough mode: find where it was going, open the
// upstream connection from inside the workload's netns, splice, and account for it. Outbound: the
// original destination comes from the BPF maps. Inbound (15006): sk_lookup keeps the destination
// address, so it is the accepted socket's local address and port; the upstream is the app itself.
import type { Socket } from 'node:net';
import type { Logger } from '../../common/log';
import { ConnectionTable, type Direction, type Endpoint } from '../connections/table';
import { splice } from '../../common/hbone/splice';
import type { NetnsSockets } from './netns-sockets';
import type { OriginalDestinations } from './original-destination';
import { NODE_PROXY_PORTS } from '../../common/contracts/ports';

export interface CapturedWorkload {
  readonly key: string;
  readonly netnsPath: string;
  readonly netnsCookie: bigint;
}

export interface HandlerDeps {
  readonly sockets: NetnsSockets;
  readonly originals: OriginalDestinations;
  readonly table: ConnectionTable;
  readonly log: Logger;
}

/** What the enroller calls for each accepted connection on a workload's 15001 / 15006 listeners. */
export interface CaptureHandlers {
  outbound(wl: CapturedWorkload, socket: Socket): void;
  inbound(wl: CapturedWorkload, socket: Socket): void;
}

/** Plain TCP passthrough both ways (the lab source, and destinations outside the mesh). */
export function passthroughHandlers(deps: HandlerDeps): CaptureHandlers {
  return { outbound: (wl, s) => handleOutbound(deps, wl, s), inbound: (wl, s) => handleInbound(deps, wl, s) };
}

export function unmap(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export function peer(s: Socket): Endpoint {
  return { address: unmap(s.remoteAddress ?? ''), port: s.remotePort ?? 0 };
}

export function local(s: Socket): Endpoint {
  return { address: unmap(s.localAddress ?? ''), port: s.localPort ?? 0 };
}

export async function forward(deps: HandlerDeps, wl: CapturedWorkload, direction: Direction, down: Socket, source: Endpoint, dst: Endpoint): Promise<void> {
  // Until the upstream is there, the client's bytes wait in the kernel (and then in the socket).
  down.pause();
  let up: Socket;
  try {
    up = await deps.sockets.connect(wl.netnsPath, dst.address, dst.port);
  } catch (err) {
    deps.log.info(
      { direction, workload: wl.key, src: source, dst, error: (err as NodeJS.ErrnoException).code ?? (err as Error).message },
      'upstream connect failed; resetting the client',
    );
    down.resetAndDestroy();
    return;
  }
  if (down.destroyed) {
    up.destroy();
    return;
  }
  const id = deps.table.add({ direction, workload: wl.key, source, originalDestination: dst, downstream: down });
  splice(down, up, ({ error }) => {
    const rec = deps.table.close(id, error ? ((error as NodeJS.ErrnoException).code ?? error.message) : undefined);
    if (rec) {
      deps.log.info(
        {
          access: direction,
          workload: rec.workload,
          src: `${rec.source.address}:${rec.source.port}`,
          dst: `${rec.originalDestination.address}:${rec.originalDestination.port}`,
          sent: rec.bytesSent,
          received: rec.bytesReceived,
          durationMs: rec.durationMs,
          ...(rec.error ? { error: rec.error } : {}),
        },
        'connection closed',
      );
    }
  });
  down.resume();
}

export function handleOutbound(deps: HandlerDeps, wl: CapturedWorkload, down: Socket): void {
  down.on('error', () => undefined); // errors before the splice owns the socket
  const source = peer(down);
  const dst = deps.originals.take(wl.netnsCookie, source);
  if (!dst) {
    deps.log.warn({ workload: wl.key, src: source }, 'captured connection has no recorded original destination (connected to 15001 directly?); closing it');
    down.resetAndDestroy();
    return;
  }
  void forward(deps, wl, 'outbound', down, source, dst);
}


export function handleInbound(deps: HandlerDeps, wl: CapturedWorkload, down: Socket): void {
  down.on('error', () => undefined);
  const dst = local(down);
  if (NODE_PROXY_PORTS.has(dst.port)) {
    // Someone dialled podIP:15006 (or another proxy port) directly: forwarding it would loop.
    deps.log.info({ workload: wl.key, src: peer(down), dst }, 'inbound connection to a proxy port; refusing it');
    down.resetAndDestroy();
    return;
  }
  void forward(deps, wl, 'inbound', down, peer(down), dst);
}
