// The demo's L7 part, through the backend's waypoint: 100 GETs from the frontend's pod to the
// backend VIP (split per version by the HTTPRoute), a few DELETEs (denied by policy at the
// waypoint), and which identity the backends' node proxies saw (the waypoint's). Driving is I/O;
// the summary and its text are pure (formatWaypointDemo).
import type { ClientReport } from '../app/client';
import { readWaypointPods, type LabTopology, type LabWaypointPod } from '../state';
import { sleep } from '../sys';
import { labTimeout } from '../time-scale';
import { waypointProcess } from '../waypoints/controller';
import { waypointReadiness } from '../waypoints/status';
import { DEMO_NS, service, spiffeId, VERSION_SERVICES, WAYPOINT, type DemoRole } from './demo';
import { scrapeNodeProxies, sumBy } from './metrics';
import { runClientIn } from './traffic';

export const SPLIT_REQUESTS = 100;
export const DELETE_REQUESTS = 5;

/** Waits until the lab controller runs the demo's waypoint and it is ready; its pod. */
export async function waitWaypointReady(lab: string, g: { namespace: string; name: string }, timeoutMs = 30_000): Promise<LabWaypointPod> {
  const limit = labTimeout(timeoutMs);
  const deadline = Date.now() + limit;
  let last = 'the lab controller has not made its pod yet';
  while (Date.now() < deadline) {
    const w = readWaypointPods(lab).find((p) => p.gateway.namespace === g.namespace && p.gateway.name === g.name);
    if (w) {
      if (!waypointProcess(lab, w.pod.name)) last = `no waypoint process in ${w.pod.name} yet`;
      else {
        last = await waypointReadiness(w.pod.netnsPath);
        if (last === 'ready') return w;
      }
    }
    await sleep(200);
  }
  throw new Error(
    `waypoint ${g.namespace}/${g.name} was not ready within ${limit / 1000} s (${last}); see the lab's logs (wp-${g.name}-waypoint.log, control-lab-controller.log)`,
  );
}

export interface WaypointDemo {
  waypoint: { gateway: string; pod: string; node: string; ip: string; id: string };
  gets: ClientReport | { error: string };
  deletes: ClientReport | { error: string };
  /** Connections the backends' node proxies opened meanwhile, by source identity (istio_tcp_connections_opened_total). */
  seenAtBackends: Record<string, number>;
}

export async function driveWaypointDemo(state: LabTopology, roles: readonly DemoRole[], w: LabWaypointPod): Promise<WaypointDemo> {
  const fe = roles.find((r) => r.role === 'frontend') as DemoRole; // assignRoles always has one
  const backends = new Set(roles.filter((r) => r.role === 'backend').map((r) => r.workload));
  const be = service('backend');
  const target = `${be.vip}:${be.port}`;
  // Connections into the backends, by peer identity, counted by their node proxies when opened
  // (the waypoint keeps its upstream connections open, so the access log comes only later).
  const opened = async (): Promise<Map<string, number>> =>
    sumBy(
      await scrapeNodeProxies(state),
      'istio_tcp_connections_opened_total',
      'source_principal',
      (l) => l.reporter === 'destination' && backends.has(l.destination_workload ?? ''),
    );
  const before = await opened();
  const gets = await runClientIn(state, fe.pod.name, target, 'http', { connections: SPLIT_REQUESTS, concurrency: 10, size: 0, timeoutMs: labTimeout(30_000) });
  const deletes = await runClientIn(state, fe.pod.name, target, 'http', {
    connections: DELETE_REQUESTS,
    concurrency: 5,
    size: 0,
    timeoutMs: labTimeout(15_000),
    method: 'DELETE',
  });
  const seenAtBackends: Record<string, number> = {};
  for (const [id, n] of await opened()) if (n - (before.get(id) ?? 0) > 0) seenAtBackends[id || '-'] = n - (before.get(id) ?? 0);
  return {
    waypoint: { gateway: `${w.gateway.namespace}/${w.gateway.name}`, pod: w.pod.name, node: w.pod.node, ip: w.pod.ip, id: spiffeId(DEMO_NS, WAYPOINT) },
    gets,
    deletes,
    seenAtBackends,
  };
}

const pct = (n: number, of: number): string => (of ? `${Math.round((100 * n) / of)} %` : '-');
const codes = (r: ClientReport): string =>
  Object.entries(r.statusCodes)
    .map(([c, n]) => `${c} x${n}`)
    .join(', ') || 'no answer';

export interface WaypointDemoVerdict {
  text: string;
  /** GETs all 200 and split as routed (within 4 sigma), DELETEs all 403, the backends saw only the waypoint. */
  ok: boolean;
}

/** Within `sigmas` standard deviations of a binomial(n, p) count. */
export function withinBinomial(k: number, n: number, p: number, sigmas = 4): boolean {
  const sd = Math.sqrt(n * p * (1 - p));
  return Math.abs(k - n * p) <= sigmas * sd;
}

export function formatWaypointDemo(d: WaypointDemo, trustDomain: string): WaypointDemoVerdict {
  const lines: string[] = [];
  let ok = true;
  lines.push(`through the waypoint ${d.waypoint.gateway} (pod ${d.waypoint.pod} on ${d.waypoint.node}, ${d.waypoint.ip}, ${d.waypoint.id}):`);
  const g = d.gets;
  if ('error' in g) {
    ok = false;
    lines.push(`  BAD GET    x${SPLIT_REQUESTS}: the client failed: ${g.error}`);
  } else {
    const served = Object.values(g.versions ?? {}).reduce((a, b) => a + b, 0);
    const split = VERSION_SERVICES.map(
      (v) => `${v.version} ${g.versions?.[v.version] ?? 0} (${pct(g.versions?.[v.version] ?? 0, served)}, routed ${v.weight} %)`,
    ).join(', ');
    const v2 = g.versions?.v2 ?? 0;
    const good = g.ok === g.connections && withinBinomial(v2, served, (VERSION_SERVICES[1]?.weight ?? 10) / 100);
    ok &&= good;
    lines.push(`  ${good ? 'ok ' : 'BAD'} GET    x${g.connections}: ${codes(g)}; ${split}`);
  }
  const del = d.deletes;
  if ('error' in del) {
    ok = false;
    lines.push(`  BAD DELETE x${DELETE_REQUESTS}: the client failed: ${del.error}`);
  } else {
    const good = (del.statusCodes['403'] ?? 0) === del.connections;
    ok &&= good;
    lines.push(
      `  ${good ? 'ok ' : 'BAD'} DELETE x${del.connections}: ${codes(del)}${del.errorBody ? ` (${del.errorBody.trim()})` : ''}; policy backend-deny-delete at the waypoint`,
    );
  }
  const seen = Object.entries(d.seenAtBackends);
  const onlyWaypoint = seen.length === 1 && seen[0]?.[0] === d.waypoint.id;
  ok &&= onlyWaypoint;
  const who = seen.map(([id, n]) => `${n} connection(s) from ${id.replace(`spiffe://${trustDomain}/`, '')}`).join(', ') || 'no connection';
  lines.push(`  ${onlyWaypoint ? 'ok ' : 'BAD'} the backends' node proxies opened ${who} (only the waypoint may connect; it reuses its upstream connections)`);
  return { text: lines.join('\n') + '\n', ok };
}
