// The observer as a control plane component: started with the control plane, reading the proxies
// that are connected over xDS (from the xDS component's client list, GET /debug/xds), and serving
// what it gathered on the config API (behind the token):
//   GET /debug/observe/records?from=&to=&port=&since=&limit=   recent access records (RecordFilter)
//   GET /debug/observe/edges                                    the graph's edges with rates
//   GET /debug/observe/proxies                                  every proxy read, and how that went
// Settings from the environment: NODEMESH_OBSERVE_INTERVAL_MS (default 5000; 0 turns it off),
// NODEMESH_OBSERVE_TIMEOUT_MS (default 2000).
import type { ControlPlane, ControlPlaneComponent } from '../control-plane';
import { Observer, type RecordFilter } from './observer';
import type { ConnectedClient } from './targets';

export const OBSERVE_COMPONENT = 'observe';

export class ObserverComponent implements ControlPlaneComponent {
  readonly name = OBSERVE_COMPONENT;
  private observerRef?: Observer;

  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  /** The observer (after start). */
  get observer(): Observer | undefined {
    return this.observerRef;
  }

  async start(cp: ControlPlane): Promise<void> {
    const interval = Number(this.env.NODEMESH_OBSERVE_INTERVAL_MS ?? 5000);
    const timeout = Number(this.env.NODEMESH_OBSERVE_TIMEOUT_MS ?? 2000);
    const port = this.env.NODEMESH_OBSERVE_PORT ? Number(this.env.NODEMESH_OBSERVE_PORT) : undefined;
    this.observerRef = new Observer({
      clients: () => (cp.debug('xds', new URLSearchParams()) as { clients?: ConnectedClient[] } | undefined)?.clients ?? [],
      intervalMs: interval > 0 ? Math.max(500, interval) : 5000,
      timeoutMs: timeout > 0 ? timeout : 2000,
      port,
      log: cp.log.child({ component: OBSERVE_COMPONENT }),
    });
    if (interval > 0) this.observerRef.start();
  }

  async stop(): Promise<void> {
    await this.observerRef?.stop();
  }

  debug(path: string, query: URLSearchParams): unknown {
    const o = this.observerRef;
    if (!o || !path.startsWith('observe/')) return undefined;
    switch (path) {
      case 'observe/records':
        return { kind: 'ObservedRecords', records: o.recentRecords(recordFilter(query)) };
      case 'observe/edges':
        return { kind: 'ObservedEdges', edges: o.edges() };
      case 'observe/proxies':
        return { kind: 'ObservedProxies', proxies: o.proxyObservations(), skipped: o.skippedTargets };
      default:
        return undefined;
    }
  }
}

/** A RecordFilter from ?from=&to=&port=&since=&limit= (values that are not numbers are ignored). */
export function recordFilter(q: URLSearchParams): RecordFilter {
  const num = (k: string): number | undefined => {
    const v = q.get(k);
    const n = v === null || v === '' ? Number.NaN : Number(v);
    return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
  };
  return {
    from: q.get('from') || undefined,
    to: q.get('to') || undefined,
    port: num('port'),
    since: num('since'),
    limit: Math.min(num('limit') ?? 100, 5000),
  };
}
