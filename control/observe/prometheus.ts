// The Prometheus text exposition format (version 0.0.4), read back: the samples of the metrics
// asked for, as name + labels + value. Pure; enough for what prom-client writes (and Envoy's
// /stats/prometheus): comments skipped, label values with \\, \" and \n escapes, optional time
// stamps ignored. A line that does not parse is skipped, never fatal.

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The samples of the metrics named in `wanted` (all when omitted). */
export function parsePrometheusText(text: string, wanted?: ReadonlySet<string>): Sample[] {
  const out: Sample[] = [];
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    if (line.length === 0 || line[0] === '#') continue;
    const s = parseLine(line, wanted);
    if (s) out.push(s);
  }
  return out;
}

function parseLine(line: string, wanted: ReadonlySet<string> | undefined): Sample | undefined {
  let i = 0;
  while (i < line.length && line[i] !== '{' && line[i] !== ' ' && line[i] !== '\t') i++;
  const name = line.slice(0, i);
  if (!name || (wanted && !wanted.has(name))) return undefined;
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    for (;;) {
      while (line[i] === ' ' || line[i] === ',') i++;
      if (line[i] === '}') {
        i++;
        break;
      }
      const eq = line.indexOf('=', i);
      if (eq < 0 || line[eq + 1] !== '"') return undefined;
      const key = line.slice(i, eq).trim();
      let j = eq + 2;
      let value = '';
      for (;;) {
        const c = line[j];
        if (c === undefined) return undefined;
        if (c === '\\') {
          const n = line[j + 1];
          value += n === 'n' ? '\n' : (n ?? '');
          j += 2;
        } else if (c === '"') {
          j++;
          break;
        } else {
          value += c;
          j++;
        }
      }
      labels[key] = value;
      i = j;
    }
  }
  const rest = line.slice(i).trim().split(/\s+/)[0];
  if (rest === undefined || rest === '') return undefined;
  const value = rest === '+Inf' ? Infinity : rest === '-Inf' ? -Infinity : Number(rest);
  if (Number.isNaN(value) && rest !== 'NaN') return undefined;
  return { name, labels, value };
}
