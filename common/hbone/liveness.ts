// Liveness of one HBONE connection, the same at both ends: an HTTP/2 PING, and a verdict when it
// is not answered. A peer can vanish without a FIN or RST reaching us (its netns or veth removed,
// a host gone, a path that stopped carrying packets): TCP then says nothing for minutes, and the
// connection's streams, their upstreams and their records stay. A PING not answered within the
// timeout while nothing else arrives on the connection either is the verdict "dead".
//
// A connection that keeps delivering bytes is alive, however late its PING answer: on a loaded or
// slow machine (a VM under TCG, 300 tunnels at once) the answer queues behind megabytes of the
// peer's DATA, and a verdict then reset every tunnel on it. The verdict also runs after pending
// I/O (setImmediate), so an answer that arrived while the event loop was busy counts. One timer per
// connection, never per chunk.
//
// Killing a dead connection takes its TCP socket too: node:http2 finishes destroying a session
// only once its pending write to the socket completes, and to a peer that stopped reading (or
// vanished) that write stays pending as long as TCP retries — minutes, with the socket, its
// buffers and the session's memory held all along.
import type { Http2Session } from 'node:http2';

/** Why a session was destroyed by the liveness check (its streams fail with this). */
export class ConnectionDeadError extends Error {
  constructor(readonly timeoutMs: number) {
    super(
      `the HBONE connection did not answer an HTTP/2 PING within ${timeoutMs} ms; it is taken as dead and closed (its streams fail, new tunnels use a new connection)`,
    );
    this.name = 'ConnectionDeadError';
  }
}

/** Bytes read on the session's connection so far (0 when it has no socket any more). */
export function bytesRead(session: Http2Session): number {
  try {
    return session.socket?.bytesRead ?? 0;
  } catch {
    return 0;
  }
}

/** Something under a session that must go with it: its TLS socket, its TCP socket. */
export interface Transport {
  readonly destroyed: boolean;
  destroy(error?: Error): unknown;
}

/**
 * Destroys a session and the sockets under it at once (see the top: node:http2 alone would wait
 * for a pending write). `transport` is what the session runs on; node:http2's `session.socket` is
 * a proxy that refuses destroy().
 */
export function destroySession(session: Http2Session, transport: readonly (Transport | undefined)[], error?: Error): void {
  if (!session.destroyed) session.destroy(error);
  for (const t of transport) if (t && !t.destroyed) t.destroy();
}

/**
 * PINGs a session, one PING at a time, and calls `onDead` when one is not answered within
 * `timeoutMs` while no byte arrived on the connection either (then the wait starts again).
 */
export class PingProbe {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly session: Http2Session,
    private readonly timeoutMs: number,
    private readonly onDead: (error: ConnectionDeadError) => void,
  ) {}

  /** A PING is in flight. */
  get pending(): boolean {
    return this.timer !== undefined;
  }

  /** PINGs now unless a PING is already in flight or the session is going away. */
  probe(): void {
    const session = this.session;
    if (this.timer || session.destroyed || session.closed) return;
    let heard = bytesRead(session);
    let timer: NodeJS.Timeout;
    const verdict = (): void => {
      if (this.timer !== timer) return; // answered (or stopped) meanwhile
      const now = bytesRead(session);
      if (now > heard && !session.destroyed && !session.closed) {
        heard = now;
        arm();
        return;
      }
      this.timer = undefined;
      if (!session.destroyed) this.onDead(new ConnectionDeadError(this.timeoutMs));
    };
    const arm = (): void => {
      timer = setTimeout(() => setImmediate(verdict), this.timeoutMs);
      timer.unref();
      this.timer = timer;
    };
    arm();
    const answered = (): void => {
      if (this.timer !== timer) return;
      clearTimeout(timer);
      this.timer = undefined;
    };
    let sent = false;
    try {
      // The callback also runs (with an error) when the session is destroyed before the answer.
      sent = session.ping(answered);
    } catch {
      sent = false;
    }
    // Too many unanswered PINGs already queued, or the session is going away: not a liveness verdict.
    if (!sent) answered();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
