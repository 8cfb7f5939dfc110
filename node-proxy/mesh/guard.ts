// Open connections that policy admitted, kept so that a policy change can re-check them: each
// one's destination workload, the facts policy saw, and how to cut it. When Authorizations (or
// the workloads they select) change, every open connection is evaluated again and those no longer
// allowed are reset, logged and counted.
import { Counter, type Registry } from '../../common/prom';
import type { Logger } from '../../common/log';
import type { PolicyConnection, PolicyContext } from '../policy/model';
import { connectionsNoLongerAllowed } from '../policy/revalidate';

interface Guarded {
  readonly destination: string;
  readonly connection: PolicyConnection;
  readonly describe: Readonly<Record<string, unknown>>;
  readonly cut: () => void;
}

export class PolicyGuard {
  private readonly open = new Map<number, Guarded>();
  private nextId = 1;
  private readonly closed: Counter<'policy'>;
  private scheduled = false;

  constructor(
    registry: Registry,
    private readonly log: Logger,
  ) {
    this.closed = new Counter({
      name: 'nodemesh_policy_connections_closed_total',
      help: 'Open connections closed because a policy change no longer allows them, by the policy that decided',
      labelNames: ['policy'],
      registers: [registry],
    });
  }

  /** Keeps a connection under watch; returns the function that forgets it (call at close). */
  add(destinationUid: string, connection: PolicyConnection, describe: Record<string, unknown>, cut: () => void): () => void {
    const id = this.nextId++;
    this.open.set(id, { destination: destinationUid, connection, describe, cut });
    return () => this.open.delete(id);
  }

  get size(): number {
    return this.open.size;
  }

  /** Re-check soon (changes arrive in bursts: one pass per burst). */
  recheckSoon(contextFor: (destinationUid: string, port: number) => PolicyContext | undefined): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.recheck(contextFor);
    });
  }

  /** Evaluates every open connection again and cuts those no longer allowed; returns how many. */
  recheck(contextFor: (destinationUid: string, port: number) => PolicyContext | undefined): number {
    const list = [...this.open].map(([id, g]) => ({ id, destination: g.destination, connection: g.connection }));
    const closing = connectionsNoLongerAllowed(list, contextFor);
    for (const c of closing) {
      const g = this.open.get(c.id);
      if (!g) continue;
      this.open.delete(c.id);
      this.closed.inc({ policy: c.verdict.policy ?? 'none' });
      this.log.warn({ ...g.describe, policy: c.verdict.policy, reason: c.verdict.reason }, 'closing an open connection that policy no longer allows');
      g.cut();
    }
    return closing.length;
  }
}
