// Label and field selectors as the API server parses them from `?labelSelector=` and
// `?fieldSelector=`: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a` for labels;
// `path=value`, `path!=value` over dotted object paths for fields.

export type Matcher = (labels: Record<string, string> | undefined) => boolean;

export class SelectorError extends Error {}

function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur.trim() !== '') parts.push(cur);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

export function parseLabelSelector(text: string | null | undefined): Matcher {
  if (!text) return () => true;
  const reqs: Matcher[] = [];
  for (const part of splitTopLevel(text)) {
    let m: RegExpMatchArray | null;
    if ((m = part.match(/^([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)$/))) {
      const [, key, op, list] = m;
      const values = new Set(list.split(',').map((v) => v.trim()));
      reqs.push(op === 'in' ? (l) => l?.[key] !== undefined && values.has(l[key]) : (l) => l?.[key] === undefined || !values.has(l[key]));
    } else if ((m = part.match(/^([^\s!=]+)\s*(==|=|!=)\s*([^\s,]*)$/))) {
      const [, key, op, value] = m;
      reqs.push(op === '!=' ? (l) => l?.[key] !== value : (l) => l?.[key] === value);
    } else if ((m = part.match(/^!\s*([^\s!=]+)$/))) {
      const key = m[1];
      reqs.push((l) => l?.[key] === undefined);
    } else if ((m = part.match(/^([^\s!=()]+)$/))) {
      const key = m[1];
      reqs.push((l) => l?.[key] !== undefined);
    } else {
      throw new SelectorError(`unable to parse requirement: "${part}"`);
    }
  }
  return (labels) => reqs.every((r) => r(labels));
}

export type FieldMatcher = (obj: unknown) => boolean;

function pathValue(obj: unknown, path: string): string {
  let cur: unknown = obj;
  for (const seg of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return '';
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur === undefined || cur === null ? '' : String(cur);
}

export function parseFieldSelector(text: string | null | undefined): FieldMatcher {
  if (!text) return () => true;
  const reqs: FieldMatcher[] = [];
  for (const part of splitTopLevel(text)) {
    const m = part.match(/^([A-Za-z0-9.]+)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw new SelectorError(`invalid field selector: "${part}"`);
    const [, path, op, value] = m;
    reqs.push(op === '!=' ? (o) => pathValue(o, path) !== value : (o) => pathValue(o, path) === value);
  }
  return (obj) => reqs.every((r) => r(obj));
}
