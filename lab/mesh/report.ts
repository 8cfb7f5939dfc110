// What the demo prints (pure): node proxy access-log lines parsed, matched to the edges the demo
// drove, and one short table — per edge the client's outcome, whether the destination's node proxy
// carried it over mutual TLS, the SPIFFE IDs on both ends, bytes, and the policy verdict with its reason.
import { formatTable } from '../../common/table';
import type { ClientReport } from '../app/client';
import type { DemoEdge } from './demo';

/** One access-log line of a node proxy (the fields node-proxy/telemetry/access-log.ts writes). */
export interface AccessEntry {
  reporter: string;
  msg: string;
  srcAddr: string;
  dstAddr: string;
  srcIdentity?: string;
  dstIdentity?: string;
  srcWorkload?: string;
  dstWorkload?: string;
  service?: string;
  protocol: string;
  bytesSent: number;
  bytesRecv: number;
  denyReason?: string;
  policy?: string;
  error?: string;
  /** when the connection opened (epoch ms): the log line's time less its duration; absent when the line lacks either */
  openedAtMs?: number;
}

interface RawPeer {
  addr?: unknown;
  identity?: unknown;
  workload?: unknown;
  service?: unknown;
}

const s = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const n = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** A line's time (ISO 8601 or epoch ms) less its duration_ms, or undefined. */
function openedAt(time: unknown, durationMs: unknown): number | undefined {
  const end = typeof time === 'string' ? Date.parse(time) : typeof time === 'number' ? time : Number.NaN;
  if (!Number.isFinite(end) || typeof durationMs !== 'number' || !Number.isFinite(durationMs)) return undefined;
  return end - durationMs;
}

/** The access-log entries among a node proxy's log lines (other lines are skipped). */
export function parseAccessLog(text: string): AccessEntry[] {
  const out: AccessEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{') || !line.includes('"reporter"')) continue;
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    const src = (j.src ?? {}) as RawPeer;
    const dst = (j.dst ?? {}) as RawPeer;
    const reporter = s(j.reporter);
    const srcAddr = s(src.addr);
    const dstAddr = s(dst.addr);
    if (!reporter || !srcAddr || !dstAddr) continue;
    out.push({
      reporter,
      msg: s(j.msg) ?? '',
      srcAddr,
      dstAddr,
      srcIdentity: s(src.identity),
      dstIdentity: s(dst.identity),
      srcWorkload: s(src.workload),
      dstWorkload: s(dst.workload),
      service: s(dst.service),
      protocol: s(j.protocol) ?? '?',
      bytesSent: n(j.bytes_sent),
      bytesRecv: n(j.bytes_recv),
      denyReason: s(j.deny_reason),
      policy: s(j.policy),
      error: s(j.error),
      openedAtMs: openedAt(j.time, j.duration_ms),
    });
  }
  return out;
}

const hostOf = (addr: string): string => addr.replace(/^\[/, '').replace(/\]?:\d+$/, '');
const portOf = (addr: string): number => Number(/:(\d+)$/.exec(addr)?.[1] ?? 0);

/** The destination proxy's entries for connections from `srcIp` to `dstIp:dstPort`. */
export function entriesFor(entries: readonly AccessEntry[], srcIp: string, dstIp: string, dstPort: number): AccessEntry[] {
  return entries.filter((e) => e.reporter === 'destination' && hostOf(e.srcAddr) === srcIp && hostOf(e.dstAddr) === dstIp && portOf(e.dstAddr) === dstPort);
}

export interface EdgeObservation {
  edge: DemoEdge;
  client: ClientReport | { error: string };
  /** Destination node proxy entries for this edge (may be empty: no mesh, or nothing reached it). */
  entries: AccessEntry[];
  /** false: the lab runs without a mesh (no proxies to log anything). */
  mesh?: boolean;
}

export interface EdgeSummary {
  label: string;
  target: string;
  clientOk: number;
  clientTotal: number;
  /** allowed / denied as the destination proxy logged it; '-' when it logged nothing. */
  verdict: string;
  mtls: string;
  srcId: string;
  dstId: string;
  bytes: string;
  reason: string;
  expected: boolean;
}

/** The first clause of a reason (up to ';'), at most 110 characters: the table stays readable; the log has the rest. */
export function shortReason(r: string): string {
  let first = r.split(/; /)[0] ?? r;
  if ((first.match(/\(/g) ?? []).length > (first.match(/\)/g) ?? []).length) first += ')';
  return first.length > 110 ? `${first.slice(0, 109)}…` : first;
}

const shortId = (id: string | undefined): string => (id ? id.replace(/^spiffe:\/\/[^/]+\//, '') : '-');

export function humanBytes(b: number): string {
  if (b < 1024) return `${b} B`;
  if (b < 1024 * 1024) return `${(b / 1024).toFixed(1)} KiB`;
  return `${(b / 1024 / 1024).toFixed(1)} MiB`;
}

export function summarizeEdge(o: EdgeObservation): EdgeSummary {
  const c = o.client;
  const total = 'connections' in c ? c.connections : 0;
  const ok = 'ok' in c ? c.ok : 0;
  const denied = o.entries.filter((e) => e.msg === 'connection denied' || e.denyReason !== undefined);
  const passed = o.entries.filter((e) => !denied.includes(e));
  const first = passed[0] ?? denied[0];
  let verdict = '-';
  if (o.entries.length)
    verdict =
      denied.length === 0 ? `allowed ${passed.length}` : passed.length === 0 ? `denied ${denied.length}` : `allowed ${passed.length}, denied ${denied.length}`;
  // Through a waypoint (L7) the client's HTTP statuses are the waypoint's answers and decide the row.
  // What destination proxies logged are the waypoint's pooled upstream connections, not the edge's:
  // they close (and are logged) when the backend's keep-alive runs out, which falls inside the wait
  // for log lines on a slow machine (5.10 VM: `allowed 5 (via waypoint)` instead of `waypoint: 200 x5`).
  const wpAnswered = !!o.edge.waypoint && 'statusCodes' in c && Object.keys(c.statusCodes).length > 0;
  if (wpAnswered && 'statusCodes' in c)
    verdict = `waypoint: ${Object.entries(c.statusCodes)
      .map(([code, k]) => `${code} x${k}`)
      .join(', ')}`;
  if (verdict.startsWith('allowed') && o.edge.waypoint) verdict += ' (via waypoint)';
  const mtls =
    o.mesh === false
      ? 'no'
      : wpAnswered
        ? 'yes'
        : o.entries.length === 0
          ? 'no log'
          : o.entries.every((e) => e.protocol === 'HBONE')
            ? 'yes'
            : o.entries.every((e) => e.protocol === 'same-node')
              ? 'same node'
              : o.entries.some((e) => e.protocol === 'HBONE')
                ? 'mixed'
                : 'no';
  const sent = passed.reduce((a, e) => a + e.bytesSent, 0);
  const recv = passed.reduce((a, e) => a + e.bytesRecv, 0);
  const reason = denied[0]
    ? shortReason(
        `${denied[0].denyReason ?? 'denied'}${denied[0].policy && !(denied[0].denyReason ?? '').includes(denied[0].policy) ? ` (${denied[0].policy})` : ''}`,
      )
    : o.entries.length || wpAnswered
      ? `${o.edge.why}${wpAnswered && 'errorBody' in c && c.errorBody ? `: ${c.errorBody.trim()}` : ''}`
      : 'error' in c
        ? c.error
        : o.edge.why;
  const expected = o.edge.expect === 'allow' ? total > 0 && ok === total : ok === 0;
  return {
    label: o.edge.label,
    target: o.edge.target,
    clientOk: ok,
    clientTotal: total,
    verdict,
    mtls,
    srcId: wpAnswered ? `ns/${o.edge.from.namespace}/sa/${o.edge.from.serviceAccount}` : shortId(first?.srcIdentity),
    dstId: wpAnswered ? shortId(o.edge.waypoint?.id) : shortId(first?.dstIdentity),
    bytes: passed.length && !wpAnswered ? `${humanBytes(sent)} / ${humanBytes(recv)}` : '-',
    reason,
    expected,
  };
}

export function formatEdgeTable(rows: readonly EdgeSummary[], trustDomain: string): string {
  const table = formatTable(
    ['EDGE', 'DIALS', 'CLIENT', 'PROXY SAYS', 'mTLS', 'SOURCE ID', 'DEST ID', 'BYTES IN/OUT', 'WHY'],
    rows.map((r) => [
      `${r.expected ? 'ok ' : 'BAD'} ${r.label}`,
      r.target,
      `${r.clientOk}/${r.clientTotal} ok`,
      r.verdict,
      r.mtls,
      r.srcId,
      r.dstId,
      r.bytes,
      r.reason,
    ]),
  );
  return `${table}(IDs are spiffe://${trustDomain}/…; "ok" = what the policy says should happen did; BYTES as the destination's node proxy counted them)\n`;
}
