// How `nodemesh get` shows resources: one table per kind with the columns an operator looks for
// first, like kubectl. Pure formatting.
import { formatTable as alignedTable } from '../../common/table';
import type { AnyResource } from '../resources/kinds';
import { DATAPLANE_MODE_LABEL, meshLabel, USE_WAYPOINT_LABEL, WAYPOINT_FOR_LABEL } from '../resources/labels';

/** `5s`, `3m`, `2h`, `4d` since `created`. */
export function age(created: string | undefined, now: Date): string {
  if (!created) return '<unknown>';
  const s = Math.max(0, Math.floor((now.getTime() - Date.parse(created)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

function orNone(s: string | undefined): string {
  return s === undefined || s === '' ? '<none>' : s;
}

function selectorText(m: Record<string, string> | undefined): string {
  return m
    ? Object.entries(m)
        .map(([k, v]) => `${k}=${v}`)
        .join(',')
    : '';
}

/** Header and cells for one resource of its kind (AGE excluded; added by formatTable). */
function columns(r: AnyResource): [string[], string[]] {
  const labels = r.metadata.labels ?? {};
  switch (r.kind) {
    case 'Namespace':
      return [
        ['DATAPLANE-MODE', 'WAYPOINT'],
        [orNone(meshLabel(labels, DATAPLANE_MODE_LABEL)), orNone(meshLabel(labels, USE_WAYPOINT_LABEL))],
      ];
    case 'Service':
      return [
        ['CLUSTER-IP', 'PORTS', 'SELECTOR', 'WAYPOINT'],
        [
          orNone(r.spec.clusterIP),
          r.spec.ports.map((p) => `${p.port}${p.targetPort !== undefined && p.targetPort !== p.port ? `:${p.targetPort}` : ''}/${p.protocol}`).join(','),
          orNone(selectorText(r.spec.selector)),
          orNone(meshLabel(labels, USE_WAYPOINT_LABEL)),
        ],
      ];
    case 'Workload':
      return [
        ['NODE', 'ADDRESSES', 'SERVICE-ACCOUNT', 'DATAPLANE-MODE'],
        [r.spec.node, r.spec.addresses.join(',') || '<pending>', r.spec.serviceAccount, orNone(meshLabel(labels, DATAPLANE_MODE_LABEL))],
      ];
    case 'AuthorizationPolicy': {
      const target = r.spec.targetRefs
        ? r.spec.targetRefs.map((t) => `${t.kind}/${t.name}`).join(',')
        : r.spec.selector
          ? selectorText(r.spec.selector.matchLabels)
          : '<namespace>';
      return [
        ['ACTION', 'TARGET', 'RULES'],
        [r.spec.action, target, String(r.spec.rules?.length ?? 0)],
      ];
    }
    case 'PeerAuthentication':
      return [
        ['MODE', 'SELECTOR', 'PORT-LEVEL'],
        [
          r.spec.mtls?.mode ?? 'UNSET',
          orNone(selectorText(r.spec.selector?.matchLabels)),
          orNone(
            Object.entries(r.spec.portLevelMtls ?? {})
              .map(([p, m]) => `${p}=${m.mode}`)
              .join(','),
          ),
        ],
      ];
    case 'Gateway':
      return [
        ['CLASS', 'WAYPOINT-FOR', 'LISTENERS'],
        [r.spec.gatewayClassName, orNone(meshLabel(labels, WAYPOINT_FOR_LABEL)), r.spec.listeners.map((l) => `${l.name}:${l.port}/${l.protocol}`).join(',')],
      ];
    case 'HTTPRoute':
      return [
        ['PARENTS', 'HOSTNAMES', 'RULES'],
        [
          r.spec.parentRefs.map((p) => `${p.namespace ? `${p.namespace}/` : ''}${p.name}${p.port ? `:${p.port}` : ''}`).join(','),
          orNone(r.spec.hostnames?.join(',')),
          String(r.spec.rules.length),
        ],
      ];
  }
}

/** Aligned text table; with `withNamespace` a NAMESPACE column comes first. */
export function formatTable(items: readonly AnyResource[], opts: { withNamespace: boolean; now?: Date }): string {
  if (items.length === 0) return '';
  const now = opts.now ?? new Date();
  const [head] = columns(items[0]);
  const header = [...(opts.withNamespace ? ['NAMESPACE'] : []), 'NAME', ...head, 'AGE'];
  const rows = items.map((r) => [
    ...(opts.withNamespace ? [r.metadata.namespace ?? ''] : []),
    r.metadata.name,
    ...columns(r)[1],
    age(r.metadata.creationTimestamp, now),
  ]);
  return alignedTable(header, rows, 3);
}
