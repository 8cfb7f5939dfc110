// The one-line verdict: what happens to the connection, along which path, and who decided.
import type { Destination, PathKind, Source, Verdict, VerdictKind, WaypointStep } from './model';

/** What a branch of the evaluation came to. */
export interface Outcome {
  readonly kind: VerdictKind;
  /** The enforcer (and policy) that decided, when one did. */
  readonly by?: string;
  readonly reason: string;
}

function pathText(path: PathKind, node: string | undefined, waypoint: WaypointStep | undefined): string {
  switch (path) {
    case 'same-node':
      return `on the same node${node ? ` (${node})` : ''}`;
    case 'hbone':
      return `over HBONE${node ? ` to ${node}` : ''}`;
    case 'waypoint': {
      const r = waypoint?.route;
      const route = r?.httpRoute ? `, HTTPRoute ${r.httpRoute} rule ${r.rule}` : '';
      const split =
        waypoint && waypoint.backends.length > 1
          ? `: ${waypoint.backends.map((b) => `${(b.service ?? b.cluster).split('.')[0]} ${b.percent} %`).join(', ')}`
          : '';
      return `through waypoint ${waypoint?.gateway ?? ''}${route}${split}`;
    }
    case 'passthrough':
      return 'passed through (the destination is outside the mesh)';
    case 'plaintext':
      return 'in plaintext (not captured)';
    case 'refused':
      return 'refused by the source node proxy';
  }
}

/** `node`: where the destination (the endpoint reached) runs. */
export function verdictOf(src: Source, dst: Destination, node: string | undefined, path: PathKind, waypoint: WaypointStep | undefined, o: Outcome): Verdict {
  const head = o.kind.toUpperCase();
  const pair = `${src.name} -> ${dst.name}:${dst.port}`;
  const by = o.by ? ` [${o.by}]` : '';
  return {
    allowed: o.kind === 'allowed' || o.kind === 'passthrough',
    kind: o.kind,
    ...(o.by ? { by: o.by } : {}),
    line: `${head}: ${pair} ${pathText(path, node, waypoint)}${by}: ${o.reason}`,
  };
}
