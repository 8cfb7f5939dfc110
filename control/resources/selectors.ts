// Label selectors: matching labels against `matchLabels`/`matchExpressions`, and parsing the
// string form used on the command line and in API queries (`app=web,tier!=db,env in (a,b),!canary`).
import type { LabelSelector } from './fields';

/** True when `labels` satisfy every requirement of `selector` (an empty selector matches all). */
export function matchesSelector(labels: Readonly<Record<string, string>> | undefined, selector: LabelSelector | undefined): boolean {
  if (!selector) return true;
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(l, e.key);
    switch (e.operator) {
      case 'In':
        if (!has || !(e.values ?? []).includes(l[e.key])) return false;
        break;
      case 'NotIn':
        if (has && (e.values ?? []).includes(l[e.key])) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** `matchLabels` only (Service selectors, policy selectors): every pair must be present. */
export function matchesLabels(labels: Readonly<Record<string, string>> | undefined, wanted: Readonly<Record<string, string>> | undefined): boolean {
  if (!wanted) return true;
  const l = labels ?? {};
  return Object.entries(wanted).every(([k, v]) => l[k] === v);
}

/** Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`; throws an Error naming the bad term. */
export function parseSelector(text: string): LabelSelector {
  const matchLabels: Record<string, string> = {};
  const matchExpressions: NonNullable<LabelSelector['matchExpressions']> = [];
  const terms = text.match(/[^,(]+(\([^)]*\))?/g) ?? [];
  for (const raw of terms) {
    const term = raw.trim();
    if (!term) continue;
    let m: RegExpMatchArray | null;
    if ((m = term.match(/^([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)$/))) {
      const values = m[3]
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      if (values.length === 0) throw new Error(`label selector term "${term}" lists no values`);
      matchExpressions.push({ key: m[1], operator: m[2] === 'in' ? 'In' : 'NotIn', values });
    } else if ((m = term.match(/^([^\s!=]+)\s*!=\s*([^\s,]*)$/))) {
      matchExpressions.push({ key: m[1], operator: 'NotIn', values: [m[2]] });
    } else if ((m = term.match(/^([^\s!=]+)\s*==?\s*([^\s,]*)$/))) {
      matchLabels[m[1]] = m[2];
    } else if ((m = term.match(/^!([^\s!=]+)$/))) {
      matchExpressions.push({ key: m[1], operator: 'DoesNotExist' });
    } else if ((m = term.match(/^([^\s!=]+)$/))) {
      matchExpressions.push({ key: m[1], operator: 'Exists' });
    } else {
      throw new Error(`cannot parse label selector term "${term}": use key=value, key!=value, key in (a,b), key notin (a,b), key or !key`);
    }
  }
  const out: LabelSelector = {};
  if (Object.keys(matchLabels).length) out.matchLabels = matchLabels;
  if (matchExpressions.length) out.matchExpressions = matchExpressions;
  return out;
}
