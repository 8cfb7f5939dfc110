// The demo's L7 part, through the backend's waypoint: 100 GETs from the frontend's pod to the
// backend VIP (split per version by the HTTPRoute), a few DELETEs (denied by policy at the
// waypoint), and which identity the backends' node proxies saw (the waypoint's). Driving is I/O;
// the summary and its text are pure (formatWaypointDemo).
import type { ClientReport } from '../app/client';
import { readWaypointPods, type LabTopology, type LabWaypointPod } from '../state';
import { sleep } from '../sys';
import { waypointProcess } from '../waypoints/controller';
import { waypointReadiness } from '../waypoints/status';
import { DEMO_NS, service, spiffeId, VERSION_SERVICES, WAYPOINT, type DemoRole } from './demo';
import { accessEntriesSince, proxyLogMarks, runClientIn } from './traffic';

export const SPLIT_REQUESTS = 100;
export const DELETE_REQUESTS = 5;

/** Waits until the lab controller runs the demo's waypoint and it is ready; its pod. */
export async function waitWaypointReady(lab: string, g: { namespace: string; name: string }, timeoutMs = 30_000): Promise<LabWaypointPod> {
  const deadline = Date.now() + timeoutMs;
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
  throw new Error(`waypoint ${g.namespace}/${g.name} was not ready within ${timeoutMs / 1000} s (${last}); see the lab's logs (wp-${g.name}-waypoint.log, control-lab-controller.log)`);
}

export interface WaypointDemo {
  waypoint: { gateway: string; pod: string; node: string; ip: string; id: string };
  gets: ClientReport | { error: string };
  deletes: ClientReport | { error: string };
  /** Identities the backends' node proxies logged for connections from the waypoint's address, and how many. */
  seenAtBackends: Record<string, number>;
  /** Connections from the frontend's own address that reached a backend (around the waypoint): should be 0. */
  direct: number;
}

export async function driveWaypointDemo(state: LabTopology, roles: readonly DemoRole[], w: LabWaypointPod): Promise<WaypointDemo> {
  const fe = roles.find((r) => r.role === 'frontend') as DemoRole; // assignRoles always has one
  const backends = roles.filter((r) => r.role === 'backend').map((r) => r.pod.ip);
  const be = service('backend');
  const target = `${be.vip}:${be.port}`;
  const marks = proxyLogMarks(state);
  const gets = await runClientIn(state, fe.pod.name, target, 'http', { connections: SPLIT_REQUESTS, concurrency: 10, size: 0, timeoutMs: 30_000 });
  const deletes = await runClientIn(state, fe.pod.name, target, 'http', { connections: DELETE_REQUESTS, concurrency: 5, size: 0, timeoutMs: 15_000, method: 'DELETE' });
  const host = (a: string): string => a.replace(/:\d+$/, '');
  const seenAtBackends: Record<string, number> = {};
  let direct = 0;
  const deadline = Date.now() + 2000;
  for (;;) {
    const entries = accessEntriesSince(state, marks).filter((e) => e.reporter === 'destination' && backends.includes(host(e.dstAddr)));
    for (const k of Object.keys(seenAtBackends)) delete seenAtBackends[k];
    for (const e of entries.filter((x) => host(x.srcAddr) === w.pod.ip)) seenAtBackends[e.srcIdentity ?? '-'] = (seenAtBackends[e.srcIdentity ?? '-'] ?? 0) + 1;
    direct = entries.filter((x) => host(x.srcAddr) === fe.pod.ip).length;
    const seen = Object.values(seenAtBackends).reduce((a, b) => a + b, 0);
    if (seen >= ('ok' in gets ? gets.ok : 0) || Date.now() >= deadline) break;
    await sleep(100);
  }
  return {
    waypoint: { gateway: `${w.gateway.namespace}/${w.gateway.name}`, pod: w.pod.name, node: w.pod.node, ip: w.pod.ip, id: spiffeId(DEMO_NS, WAYPOINT) },
    gets,
    deletes,
    seenAtBackends,
    direct,
  };
}

const pct = (n: number, of: number): string => (of ? `${Math.round((100 * n) / of)} %` : '-');
const codes = (r: ClientReport): string => Object.entries(r.statusCodes).map(([c, n]) => `${c} x${n}`).join(', ') || 'no answer';

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
    const split = VERSION_SERVICES.map((v) => `${v.version} ${g.versions?.[v.version] ?? 0} (${pct(g.versions?.[v.version] ?? 0, served)}, routed ${v.weight} %)`).join(', ');
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
    lines.push(`  ${good ? 'ok ' : 'BAD'} DELETE x${del.connections}: ${codes(del)}${del.errorBody ? ` (${del.errorBody.trim()})` : ''}; policy backend-deny-delete at the waypoint`);
  }
  const seen = Object.entries(d.seenAtBackends);
  const onlyWaypoint = seen.length === 1 && seen[0]?.[0] === d.waypoint.id && d.direct === 0;
  ok &&= onlyWaypoint;
  const who = seen.map(([id, n]) => `${n} from ${id.replace(`spiffe://${trustDomain}/`, '')}`).join(', ') || 'nothing';
  lines.push(`  ${onlyWaypoint ? 'ok ' : 'BAD'} the backends' node proxies saw ${who}${d.direct ? `, and ${d.direct} straight from the frontend` : ''} (only the waypoint may connect)`);
  return { text: lines.join('\n') + '\n', ok };
}
