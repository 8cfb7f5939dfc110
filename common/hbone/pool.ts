// The client's connection pool: HTTP/2 sessions grouped by a key (source identity, destination
// address, expected destination identity). A new tunnel takes a stream slot on a session of its
// group that has room (the server's SETTINGS_MAX_CONCURRENT_STREAMS, capped by the client), and
// opens another session when all are full. Sessions that got GOAWAY, failed, or were made with
// credentials that have since been rotated take no new streams and close once their last stream
// ends; idle sessions close after a timeout and never keep the process alive.
import type { ClientHttp2Session } from 'node:http2';

export interface PoolOptions {
  /** Close a session that carried no stream for this long. */
  readonly idleTimeoutMs: number;
  /** Client-side cap on streams per session (the server's limit applies as well). */
  readonly maxStreamsPerConnection: number;
  /** How long a new session may take to connect and receive the server's SETTINGS. */
  readonly connectTimeoutMs: number;
}

/** A stream slot on a session; call release() exactly once, when the stream closed. */
export interface Lease {
  readonly session: ClientHttp2Session;
  release(): void;
}

/** Before the server's SETTINGS arrive, assume this many slots so concurrent callers queue on one session. */
const ASSUMED_LIMIT = 100;
const MAX_ATTEMPTS = 4;

class PooledSession {
  active = 0;
  waiting = 0;
  limit: number;
  usable = true;
  idleTimer: NodeJS.Timeout | undefined;
  readonly ready: Promise<void>;

  constructor(
    readonly session: ClientHttp2Session,
    readonly generation: number,
    private readonly cap: number,
    connectTimeoutMs: number,
  ) {
    this.limit = Math.min(cap, ASSUMED_LIMIT);
    this.ready = new Promise<void>((resolve, reject) => {
      let lastError: Error | undefined;
      const timer = setTimeout(() => {
        const err = new Error(`no HTTP/2 SETTINGS from the server within ${connectTimeoutMs} ms`);
        session.destroy(err);
        reject(err);
      }, connectTimeoutMs);
      const onError = (err: Error): void => {
        lastError = err;
      };
      const onClose = (): void => {
        clearTimeout(timer);
        reject(lastError ?? new Error('the connection closed before the server sent its HTTP/2 SETTINGS'));
      };
      session.on('error', onError);
      session.once('close', onClose);
      session.once('remoteSettings', () => {
        clearTimeout(timer);
        session.off('close', onClose);
        this.updateLimit();
        resolve();
      });
    });
    // Waiters see the rejection; this only keeps an unobserved one from crashing the process.
    this.ready.catch(() => undefined);
    session.on('remoteSettings', () => this.updateLimit());
  }

  private updateLimit(): void {
    const server = this.session.remoteSettings.maxConcurrentStreams ?? Number.MAX_SAFE_INTEGER;
    this.limit = Math.max(1, Math.min(this.cap, server));
  }

  hasRoom(): boolean {
    return this.usable && this.active + this.waiting < this.limit;
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
  async acquire(key: string, generation: number, connect: () => ClientHttp2Session): Promise<Lease> {
    for (let attempt = 1; ; attempt++) {
      const pooled = this.pick(key, generation) ?? this.add(key, generation, connect());
      pooled.waiting++;
      try {
        await pooled.ready;
      } finally {
        pooled.waiting--;
      }
      if (pooled.usable && !pooled.session.destroyed && pooled.active < pooled.limit) return this.lease(pooled);
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
            if (p.session.closed || p.session.destroyed) return resolve();
            p.session.close(() => resolve());
          }),
      ),
    );
  }

  destroy(): void {
    for (const p of [...this.groups.values()].flat()) p.session.destroy();
  }

  private pick(key: string, generation: number): PooledSession | undefined {
    const group = this.groups.get(key);
    if (!group) return undefined;
    let found: PooledSession | undefined;
    for (const p of group) {
      if (p.usable && p.generation !== generation) this.retire(p);
      else if (!found && p.hasRoom()) found = p;
    }
    return found;
  }

  private add(key: string, generation: number, session: ClientHttp2Session): PooledSession {
    const pooled = new PooledSession(session, generation, this.options.maxStreamsPerConnection, this.options.connectTimeoutMs);
    let group = this.groups.get(key);
    if (!group) this.groups.set(key, (group = []));
    group.push(pooled);
    session.on('goaway', () => {
      pooled.usable = false;
    });
    session.on('error', () => {
      pooled.usable = false;
    });
    session.once('close', () => {
      pooled.usable = false;
      if (pooled.idleTimer) clearTimeout(pooled.idleTimer);
      const g = this.groups.get(key);
      if (!g) return;
      const i = g.indexOf(pooled);
      if (i >= 0) g.splice(i, 1);
      if (g.length === 0) this.groups.delete(key);
    });
    return pooled;
  }

  private lease(p: PooledSession): Lease {
    p.active++;
    if (p.idleTimer) {
      clearTimeout(p.idleTimer);
      p.idleTimer = undefined;
    }
    if (p.active === 1) p.session.ref();
    let released = false;
    return {
      session: p.session,
      release: () => {
        if (released) return;
        released = true;
        p.active--;
        if (p.active === 0 && p.waiting === 0) this.idle(p);
      },
    };
  }

  private idle(p: PooledSession): void {
    if (p.session.destroyed) return;
    p.session.unref();
    if (!p.usable) {
      p.session.close();
      return;
    }
    p.idleTimer = setTimeout(() => {
      p.idleTimer = undefined;
      if (p.active === 0 && p.waiting === 0) {
        p.usable = false;
        p.session.close();
      }
    }, this.options.idleTimeoutMs);
    p.idleTimer.unref();
  }

  /** Takes a session made with outdated credentials out of service; it closes after its last stream. */
  private retire(p: PooledSession): void {
    p.usable = false;
    if (p.active === 0 && p.waiting === 0 && !p.session.destroyed) p.session.close();
  }
}
