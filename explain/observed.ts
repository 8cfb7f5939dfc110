// `--observed`: what the proxies recorded for this pair recently, from the control plane's gatherer
// of their recent access records (control/observe, GET /debug/observe/records?from=&to=&since=&limit=).
// The records name the source by workload (node proxies) or only by identity (waypoints), and the
// destination by workload, Service host name, or the authority the client sent (waypoints), so the
// pair is asked for in each of those spellings and the answers merged. Pure: queries and summary.
import type { Explanation, Observed } from './model';

/** One gathered record, as far as the summary reads it (common/recent-records.ts plus the proxy's fields). */
export interface ObservedRecordLike {
  readonly seq: number;
  readonly time: number;
  readonly proxy?: string;
  readonly reporter?: string;
  readonly response_flags?: string;
  readonly status?: number;
  readonly error?: string;
  readonly [field: string]: unknown;
}

/** How far back "recently" reaches. */
export const OBSERVED_WINDOW_MS = 5 * 60_000;
const LIMIT = 50;

/** The record queries for the pair an explanation is about. */
export function observedQueries(e: Explanation, now: number = Date.now()): URLSearchParams[] {
  const froms = [e.source.kind === 'workload' ? e.source.name : undefined, e.source.identity].filter((x): x is string => !!x);
  const d = e.destination;
  const host = d.kind === 'service' ? d.name.slice(d.name.indexOf('/') + 1) : undefined;
  const tos = [
    d.kind === 'workload' ? d.name : undefined,
    d.identity,
    host,
    // what a waypoint records as the destination: the authority the client sent
    host ? `${host}:${d.port}` : undefined,
    d.kind === 'service' ? `${d.address}:${d.port}` : undefined,
    d.kind === 'service' ? d.address : undefined,
  ].filter((x): x is string => !!x);
  const since = String(now - OBSERVED_WINDOW_MS);
  const out: URLSearchParams[] = [];
  for (const from of froms) for (const to of tos) out.push(new URLSearchParams({ from, to, since, limit: String(LIMIT) }));
  return out;
}

const outcomeOf = (r: ObservedRecordLike): 'denied' | 'failed' | 'ok' =>
  r.response_flags === 'DENY' || r.status === 403 ? 'denied' : r.error !== undefined || (r.status !== undefined && r.status >= 500) ? 'failed' : 'ok';

/** Merged (each record once), newest first, with a one-line summary. */
export function summarizeObserved(pages: ReadonlyArray<readonly ObservedRecordLike[]>): Observed {
  const seen = new Map<string, ObservedRecordLike>();
  for (const page of pages) for (const r of page) seen.set(`${r.proxy ?? ''}#${r.seq}`, r);
  const records = [...seen.values()].sort((a, b) => b.time - a.time);
  if (records.length === 0) return { records, summary: `no records for this pair in the last ${OBSERVED_WINDOW_MS / 60_000} min` };
  const count = { ok: 0, denied: 0, failed: 0 };
  for (const r of records) count[outcomeOf(r)]++;
  const parts = Object.entries(count)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${k}`);
  const reporters = [...new Set(records.map((r) => r.reporter ?? r.proxy ?? '?'))].join(', ');
  return { records, summary: `${parts.join(', ')} in the last ${OBSERVED_WINDOW_MS / 60_000} min (reported by ${reporters})` };
}
