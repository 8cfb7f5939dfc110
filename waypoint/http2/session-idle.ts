// A downstream HTTP/2 session (h2c, or HTTP/2 inside an HBONE tunnel) with no open stream for the
// idle time is closed: GOAWAY, then the connection. Envoy's HCM `idle_timeout` in spirit (no
// active streams), not socket inactivity: a gRPC stream that stays open without traffic is not
// cut. A client that sends the connection preface and then no complete request (or HEADERS
// without their end) has no open stream, so it is bounded by the same time. One timer per
// session, checked every quarter of the idle time; the request path reports streams opening and
// closing (the server's 'stream' event, H2Response's 'close').
import type { Http2Session } from 'node:http2';

export class SessionIdle {
  private open = 0;
  private last = Date.now();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly session: Http2Session,
    private readonly idleMs: number,
    /** Called once when the session is closed for idleness (e.g. to count it). */
    private readonly onIdle: () => void,
  ) {
    this.timer = setTimeout(check, Math.max(10, idleMs / 4), this);
    this.timer.unref();
    session.once('close', () => clearTimeout(this.timer));
  }

  /** Streams open now. */
  get streams(): number {
    return this.open;
  }

  opened(): void {
    this.open++;
  }

  closed(): void {
    this.open--;
    this.last = Date.now();
  }

  check(): void {
    const s = this.session;
    if (s.destroyed || s.closed) return;
    if (this.open <= 0 && Date.now() - this.last >= this.idleMs) {
      this.onIdle();
      // GOAWAY first (a well-behaved client learns why), then the connection, whatever the peer does.
      s.close();
      const t = setTimeout(() => s.destroy(), 1000);
      t.unref();
      return;
    }
    this.timer.refresh();
  }
}

function check(i: SessionIdle): void {
  i.check();
}
