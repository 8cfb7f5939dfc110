// The client's connection pool: HTTP/2 sessions grouped by a key (source identity, destination
// address, expected destination identity). A new tunnel takes a stream slot on a session of its
// group that has room (the server's SETTINGS_MAX_CONCURRENT_STREAMS, capped by the client), and
// opens another session when all are full. Sessions that got GOAWAY, failed, or were made with
// credentials that have since been rotated take no new streams and close once their last stream
// ends; idle sessions close after a timeout and never keep the process alive.
//
// Rotation while a session is dialled: the callers that waited for it still get it. It was made
// with the credentials that were current when they asked, which are valid for them; taking it from
// them made each caller dial again, and on a slow machine (a handshake longer than the time between
// two rotations) every dial was outdated before it was ready. Only newer credentials retire a
// session: a caller that still holds older ones never retires (or redials over) a newer session.
//
// Liveness: every session is PINGed every `keepaliveIntervalMs`, and at once when a CONNECT waits
// too long for its answer (Lease.probe); a PING not answered within `pingTimeoutMs` while nothing
// else arrives on the connection either destroys the session — and the sockets under it, bound with
// bindTransport (liveness.ts says why) — which fails its streams and takes it out of the pool. This
// catches peers that vanished without a FIN or RST reaching us (a netns or veth removed, a host
// gone); a FIN is handled by the client (client.ts). The timers are per session, never per chunk.
import type { ClientHttp2Session } from 'node:http2';
import { destroySession, PingProbe, type Transport } from './liveness';

export { ConnectionDeadError } from './liveness';

/** The sockets a client session runs on (its TLS socket, the dialled TCP socket), destroyed with it. */
const transports = new WeakMap<ClientHttp2Session, readonly (Transport | undefined)[]>();

/** Tells the pool what `session` runs on, so that destroying it never waits on a stuck write. */
export function bindTransport(session: ClientHttp2Session, transport: readonly (Transport | undefined)[]): void {
  transports.set(session, transport);
}

/** Destroys a pooled session together with its sockets. */
function kill(session: ClientHttp2Session, error?: Error): void {
  destroySession(session, transports.get(session) ?? [], error);
}

export interface PoolOptions {
  /** Close a session that carried no stream for this long. */
  readonly idleTimeoutMs: number;
  /** Client-side cap on streams per session (the server's limit applies as well). */
  readonly maxStreamsPerConnection: number;
  /** How long a new session may take to connect and receive the server's SETTINGS. */
  readonly connectTimeoutMs: number;
  /** PING every session this often (0: no periodic PING; probes still run). */
  readonly keepaliveIntervalMs: number;
  /** A PING not answered within this long means the connection is dead: it is destroyed. */
  readonly pingTimeoutMs: number;
}

/** A stream slot on a session; call release() exactly once, when the stream closed. */
export interface Lease {
  readonly session: ClientHttp2Session;
  release(): void;
  /** Checks the session is alive now (a PING, unless one is in flight); destroys it if unanswered. */
  probe(): void;
}

/** Before the server's SETTINGS arrive, assume this many slots so concurrent callers queue on one session. */
const ASSUMED_LIMIT = 100;
const MAX_ATTEMPTS = 4;

class PooledSession {
  active = 0;
  waiting = 0;
  limit: number;
  usable = true;
  /** Taken out of service only because newer credentials arrived (not failed, not closing). */
  retired = false;
  idleTimer: NodeJS.Timeout | undefined;
  keepaliveTimer: NodeJS.Timeout | undefined;
  /** PINGs the session (liveness.ts); made at the first probe. */
  prober: PingProbe | undefined;
  /** Set once dialled; only sessions past `ready` are leased. */
  session: ClientHttp2Session | undefined;
  readonly ready: Promise<void>;

  constructor(
    connect: () => Promise<ClientHttp2Session>,
    readonly generation: number,
    private readonly cap: number,
    connectTimeoutMs: number,
    onSession: (session: ClientHttp2Session) => void,
  ) {
    this.limit = Math.min(cap, ASSUMED_LIMIT);
    const started = Date.now();
    this.ready = connect().then((session) => {
      this.session = session;
      onSession(session);
      session.on('remoteSettings', () => this.updateLimit());
      return new Promise<void>((resolve, reject) => {
        let lastError: Error | undefined;
        const left = Math.max(1, connectTimeoutMs - (Date.now() - started));
        const timer = setTimeout(() => {
          const err = new Error(`no HTTP/2 SETTINGS from the server within ${connectTimeoutMs} ms`);
          kill(session, err);
          reject(err);
        }, left);
        const onClose = (): void => {
          clearTimeout(timer);
          reject(lastError ?? new Error('the connection closed before the server sent its HTTP/2 SETTINGS'));
        };
        session.on('error', (err) => {
          lastError = err;
        });
        session.once('close', onClose);
        session.once('remoteSettings', () => {
          clearTimeout(timer);
          session.off('close', onClose);
          resolve();
        });
      });
    });
    // Waiters see the rejection; this only keeps an unobserved one from crashing the process.
    this.ready.catch(() => undefined);
  }

  private updateLimit(): void {
    const server = this.session?.remoteSettings.maxConcurrentStreams ?? Number.MAX_SAFE_INTEGER;
    this.limit = Math.max(1, Math.min(this.cap, server));
  }

  hasRoom(): boolean {
    return this.usable && this.active + this.waiting < this.limit;
  }

  /** PINGs the session unless a PING is already in flight; no answer in time destroys it (liveness.ts). */
  probe(timeoutMs: number): void {
    const session = this.session;
    if (!session || session.destroyed || session.closed) return;
    this.prober ??= new PingProbe(session, timeoutMs, (dead) => {
      this.usable = this.retired = false;
      kill(session, dead);
    });
    this.prober.probe();
  }

  /** Starts the periodic PING (unref'd: it never keeps the process alive). */
  startKeepalive(intervalMs: number, timeoutMs: number): void {
    if (intervalMs <= 0) return;
    this.keepaliveTimer = setInterval(() => this.probe(timeoutMs), intervalMs);
    this.keepaliveTimer.unref();
  }

  stopTimers(): void {
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.prober?.stop();
    this.keepaliveTimer = this.idleTimer = undefined;
  }
}

export class SessionPool {
  private readonly groups = new Map<string, PooledSession[]>();

  constructor(private readonly options: PoolOptions) {}

  /**
   * A stream slot in group `key` on a session made with credentials `generation`, connecting a new
   * session with `connect` when none has room. Rejects with the connection error if the session
   * it waited for failed.
   */
  async acquire(key: string, generation: number, connect: () => Promise<ClientHttp2Session>): Promise<Lease> {
    for (let attempt = 1; ; attempt++) {
      const pooled = this.pick(key, generation) ?? this.add(key, generation, connect);
      pooled.waiting++;
      try {
        await pooled.ready;
      } finally {
        pooled.waiting--;
      }
      const session = pooled.session;
      // A session retired by a rotation while this caller waited still serves it (see the top).
      const serves = pooled.usable || pooled.retired;
      if (session && serves && !session.destroyed && !session.closed && pooled.active < pooled.limit) return this.lease(pooled, session);
      if (attempt >= MAX_ATTEMPTS) throw new Error(`no HTTP/2 connection with a free stream after ${attempt} attempts`);
    }
  }

  /** Open sessions, all groups. */
  connectionCount(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.length;
    return n;
  }

  /** Per group: the sessions' active stream counts and limits (for the admin view). */
  snapshot(): { key: string; sessions: { active: number; limit: number; usable: boolean }[] }[] {
    return [...this.groups].map(([key, g]) => ({ key, sessions: g.map((p) => ({ active: p.active, limit: p.limit, usable: p.usable })) }));
  }

  /** GOAWAY to every session; open streams finish, then the sessions close. */
  async close(): Promise<void> {
    const all = [...this.groups.values()].flat();
    await Promise.all(
      all.map(
        (p) =>
          new Promise<void>((resolve) => {
            p.usable = false;
            const s = p.session;
            if (!s || s.closed || s.destroyed) return resolve();
            s.close(() => resolve());
          }),
      ),
    );
  }

  destroy(): void {
    for (const p of [...this.groups.values()].flat()) {
      p.usable = false;
      if (p.session) kill(p.session);
    }
  }

  private pick(key: string, generation: number): PooledSession | undefined {
    const group = this.groups.get(key);
    if (!group) return undefined;
    let found: PooledSession | undefined;
    for (const p of group) {
      if (p.usable && p.generation < generation) this.retire(p);
      else if (!found && p.hasRoom()) found = p;
    }
    return found;
  }

  private add(key: string, generation: number, connect: () => Promise<ClientHttp2Session>): PooledSession {
    let group = this.groups.get(key);
    if (!group) this.groups.set(key, (group = []));
    const remove = (pooled: PooledSession): void => {
      pooled.usable = false;
      pooled.stopTimers();
      const g = this.groups.get(key);
      if (!g) return;
      const i = g.indexOf(pooled);
      if (i >= 0) g.splice(i, 1);
      if (g.length === 0) this.groups.delete(key);
    };
    const pooled: PooledSession = new PooledSession(connect, generation, this.options.maxStreamsPerConnection, this.options.connectTimeoutMs, (session) => {
      session.on('goaway', () => {
        pooled.usable = pooled.retired = false;
      });
      session.on('error', () => {
        pooled.usable = pooled.retired = false;
      });
      session.once('close', () => remove(pooled));
      pooled.startKeepalive(this.options.keepaliveIntervalMs, this.options.pingTimeoutMs);
    });
    // A dial that failed leaves no session whose 'close' would remove it.
    pooled.ready.catch(() => {
      if (!pooled.session) remove(pooled);
    });
    group.push(pooled);
    return pooled;
  }

  private lease(p: PooledSession, session: ClientHttp2Session): Lease {
    p.active++;
    if (p.idleTimer) {
      clearTimeout(p.idleTimer);
      p.idleTimer = undefined;
    }
    if (p.active === 1) session.ref();
    let released = false;
    return {
      session,
      probe: () => p.probe(this.options.pingTimeoutMs),
      release: () => {
        if (released) return;
        released = true;
        p.active--;
        if (p.active === 0 && p.waiting === 0) this.idle(p);
      },
    };
  }

  private idle(p: PooledSession): void {
    const session = p.session;
    if (!session || session.destroyed) return;
    session.unref();
    if (!p.usable) {
      session.close();
      return;
    }
    p.idleTimer = setTimeout(() => {
      p.idleTimer = undefined;
      if (p.active === 0 && p.waiting === 0) {
        p.usable = false;
        session.close();
      }
    }, this.options.idleTimeoutMs);
    p.idleTimer.unref();
  }

  /** Takes a session made with outdated credentials out of service; it closes after its last stream. */
  private retire(p: PooledSession): void {
    p.usable = false;
    p.retired = true;
    if (p.active === 0 && p.waiting === 0 && p.session && !p.session.destroyed) p.session.close();
  }
}
