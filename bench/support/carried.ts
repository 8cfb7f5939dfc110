// Which way a benchmark's connections actually went (pure): read from the destination node proxy's
// access-log entries, so a "mesh" row is only called that when the proxy carried its connections,
// and a "direct" or "stunnel" row only when no proxy saw them.
import { entriesFor, type AccessEntry } from '../../lab/mesh/report';

export interface Carried {
  /** Destination-reporter entries for the measured connections. */
  count: number;
  /** Protocol -> entries (HBONE, same-node, TCP). */
  protocols: Record<string, number>;
  /** Source identities the destination proxy recorded ('-' when none). */
  sourceIdentities: string[];
  /** Entries with an error (a connection that did not complete cleanly). */
  errors: number;
}

/** The destination proxies' entries for connections from srcIp to dstIp on any of `ports`. */
export function carriedBy(entries: readonly AccessEntry[], srcIp: string, dstIp: string, ports: readonly number[]): Carried {
  const mine = ports.flatMap((p) => entriesFor(entries, srcIp, dstIp, p));
  const protocols: Record<string, number> = {};
  for (const e of mine) protocols[e.protocol] = (protocols[e.protocol] ?? 0) + 1;
  return {
    count: mine.length,
    protocols,
    sourceIdentities: [...new Set(mine.map((e) => e.srcIdentity ?? '-'))].sort(),
    errors: mine.filter((e) => e.error !== undefined).length,
  };
}

/**
 * Whether a row measured what its mode claims. Through the mesh: at least `expected` connections
 * logged by the destination proxy, every one with the wanted protocol and the source's identity.
 * Without the mesh: none at all. The text goes in the table's CARRIED column.
 */
export function carriedVerdict(c: Carried, want: { protocol: string; identity: string; expected: number } | 'no proxy'): { ok: boolean; text: string } {
  const seen = Object.entries(c.protocols)
    .map(([p, n]) => `${p} x${n}`)
    .join(', ');
  if (want === 'no proxy') return c.count === 0 ? { ok: true, text: 'no proxy' } : { ok: false, text: `BAD: proxied ${seen}` };
  const ok = c.count >= want.expected && c.protocols[want.protocol] === c.count && c.sourceIdentities.length === 1 && c.sourceIdentities[0] === want.identity;
  if (ok) return { ok, text: `${want.protocol} x${c.count}` };
  const why =
    c.count === 0 ? 'no access-log entry' : `${seen}${c.count < want.expected ? ` (want >= ${want.expected})` : ''}; ids ${c.sourceIdentities.join(' ')}`;
  return { ok, text: `BAD: ${why}` };
}
