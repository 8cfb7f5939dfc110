// The Explanation as text for a terminal: who, the path hop by hop with identities, the waypoint's
// route and backends, every policy decision in order, per-endpoint outcomes, notes, what the
// proxies logged (--observed), and last the one-line verdict.
import type { Explanation, Hop, Party, PolicyDecision } from './model';

function party(p: Party, port?: number): string {
  const where = [p.address && (port !== undefined ? `${p.address}:${port}` : p.address), p.node].filter(Boolean).join(', ');
  const kind = p.kind === 'service' ? 'Service ' : p.kind === 'address' ? 'address ' : '';
  return `${kind}${p.name}${where && where !== p.name ? ` (${where})` : ''}`;
}

function hopLines(h: Hop, i: number): string[] {
  const transport =
    h.transport === 'hbone'
      ? `HBONE to ${h.toAddress}${h.authority ? ` (CONNECT ${h.authority})` : ''}`
      : h.transport === 'same-node'
        ? `same node, to ${h.toAddress}`
        : `TCP to ${h.toAddress}`;
  const lines = [`  ${i + 1}. ${h.from} -> ${h.to}   ${transport}${h.node ? `, sent by the node proxy on ${h.node}` : ''}`];
  if (h.fromIdentity || h.toIdentity) lines.push(`     identity ${h.fromIdentity ?? '(none: plaintext)'} -> ${h.toIdentity ?? '(none)'}`);
  return lines;
}

function decisionLine(d: PolicyDecision): string {
  const what =
    d.kind === 'PeerAuthentication'
      ? `PeerAuthentication ${d.policy ?? '(default)'} ${d.action ?? ''}`
      : d.kind === 'waypoint-binding'
        ? `waypoint binding ${d.policy ?? ''}`
        : d.kind === 'route'
          ? 'routing'
          : d.policy
            ? `${d.action ?? ''} ${d.policy}${d.rule !== undefined ? ` rule ${d.rule}` : ''}`.trim()
            : d.action
              ? `${d.action} policies`
              : 'AuthorizationPolicy (none decided)';
  return `  ${d.allowed ? 'pass' : 'DENY'}  [${d.enforcer}] ${what}: ${d.reason}`;
}

/** One gathered record in a line: when, who reported it, the outcome and the deciding detail. */
function observedLine(r: unknown): string {
  if (!r || typeof r !== 'object') return String(r);
  const x = r as Record<string, unknown>;
  const side = (v: unknown): string => {
    const p = (v ?? {}) as Record<string, unknown>;
    return String(p.workload ?? p.identity ?? p.service ?? '?') + (p.port !== undefined ? `:${String(p.port)}` : '');
  };
  const when = typeof x.time === 'number' ? new Date(x.time).toISOString() : '';
  const outcome = x.status !== undefined ? `HTTP ${String(x.status)}${x.method ? ` ${String(x.method)}` : ''}` : String(x.response_flags || 'ok');
  const why = x.deny_reason ?? x.detail ?? x.error;
  return `${when} [${String(x.reporter ?? x.proxy ?? '?')}] ${side(x.src)} -> ${side(x.dst)} ${outcome}${why ? `: ${String(why)}` : ''}`;
}

export function formatExplanation(e: Explanation): string {
  const out: string[] = [];
  const s = e.source;
  out.push(`from      ${party(s)}${s.identity ? `  ${s.identity}` : ''}`);
  out.push(`          ${s.captured ? 'captured' : 'not captured'}: ${s.capture}`);
  const d = e.destination;
  out.push(`to        ${party(d, d.port)}${d.identity ? `  ${d.identity}` : ''}${d.waypoint ? `, waypoint ${d.waypoint}` : ''}`);
  if (e.query.method !== 'GET' || e.query.path !== '/' || e.waypoint?.protocol === 'http') out.push(`request   ${e.query.method} ${e.query.path}`);
  out.push(`path      ${e.path}`);
  e.hops.forEach((h, i) => out.push(...hopLines(h, i)));
  const w = e.waypoint;
  if (w) {
    out.push(`waypoint  ${w.gateway}${w.instance ? ` (instance ${w.instance}, ${w.address})` : ` (${w.address})`}`);
    if (w.listener) out.push(`  listener  ${w.listener} (${w.protocol})`);
    if (w.request) out.push(`  request   ${w.request.method} ${w.request.path}  Host ${w.request.authority}`);
    if (w.route) {
      const origin = w.route.httpRoute ? `HTTPRoute ${w.route.httpRoute} rule ${w.route.rule} match ${w.route.match}` : "the Service's default route";
      out.push(`  route     ${w.route.name} in ${w.route.routeConfig} (${origin})`);
    }
    for (const b of w.backends)
      out.push(
        `  backend   ${b.service ? `${b.service}:${b.port}` : b.cluster}  weight ${b.weight} (${b.percent} %)  endpoints ${b.endpoints.join(', ') || 'none'}`,
      );
    if (w.status !== undefined) out.push(`  answers   ${w.status}${w.action && w.action !== 'forward' ? ` (${w.action} response)` : ''}`);
  }
  if (e.policies.length) {
    out.push('policy');
    for (const p of e.policies) out.push(decisionLine(p));
  }
  if (e.endpoints && e.endpoints.length > 1) {
    out.push('endpoints');
    for (const x of e.endpoints) out.push(`  ${x.allowed ? 'pass' : 'DENY'}  ${x.workload}${x.node ? ` (${x.node})` : ''} ${x.address}: ${x.reason}`);
  }
  if (e.notes.length) {
    out.push('notes');
    for (const n of e.notes) out.push(`  - ${n}`);
  }
  if (e.observed) {
    out.push(`observed  ${e.observed.summary}`);
    for (const r of e.observed.records.slice(0, 10)) out.push(`  ${observedLine(r)}`);
  }
  out.push(e.verdict.line);
  return out.join('\n');
}
