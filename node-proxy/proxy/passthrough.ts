// Plain TCP passthrough: the upstream connection is made from inside the workload's netns to the
// target and spliced to the captured socket. Used for every connection in passthrough (lab) mode
// and, in control-plane mode, for destinations outside the mesh or not enrolled.
import type { Socket } from 'node:net';
import type { Direction, Endpoint } from '../connections/table';
import type { ProxyContext } from './context';
import type { CapturedWorkload } from './handlers';
import { errText } from './tracker';

/** `connected` is told when the upstream side is there (before the splice). */
export async function direct(
  ctx: ProxyContext,
  wl: CapturedWorkload,
  direction: Direction,
  down: Socket,
  source: Endpoint,
  target: Endpoint,
  connected?: () => void,
): Promise<void> {
  // Until the upstream is there, the client's bytes wait in the kernel (and then in the socket).
  down.pause();
  let up: Socket;
  try {
    up = await ctx.sockets.connect(wl.netnsPath, target.address, target.port);
  } catch (err) {
    ctx.log.info({ direction, workload: wl.key, src: source, dst: target, error: errText(err) }, 'upstream connect failed; resetting the client');
    down.resetAndDestroy();
    return;
  }
  if (down.destroyed) {
    up.destroy();
    return;
  }
  connected?.();
  ctx.tracker.splice(down, up, { direction, workload: wl.key, source, originalDestination: target });
}
