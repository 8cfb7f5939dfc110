// What the Grafana dashboards in grafana/ ask of the metrics: every query (panel target or
// template variable) and the metric names and labels it uses. Shared by the unit test that checks
// them against the components' registries and the mesh lab test that checks them against what the
// lab's running proxies and control plane serve.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const DASHBOARD_DIR = join(__dirname, '..', '..', 'grafana');

export interface DashboardQuery {
  readonly where: string;
  readonly expr: string;
}

export function dashboardFiles(): string[] {
  return readdirSync(DASHBOARD_DIR).filter((f) => f.endsWith('.json'));
}

export function queriesOf(file: string): DashboardQuery[] {
  const d = JSON.parse(readFileSync(join(DASHBOARD_DIR, file), 'utf8')) as {
    panels: { title: string; targets: { expr: string }[] }[];
    templating: { list: { name: string; query?: string | { query: string } }[] };
  };
  const out: DashboardQuery[] = [];
  for (const p of d.panels) for (const t of p.targets) out.push({ where: `${file} panel "${p.title}"`, expr: t.expr });
  for (const v of d.templating.list) {
    const q = typeof v.query === 'object' ? v.query.query : undefined;
    if (q) out.push({ where: `${file} variable $${v.name}`, expr: q });
  }
  return out;
}

/** What a query uses: metric names, the labels each selector names, labels grouped by. */
export function uses(expr: string): { metrics: string[]; selectors: [string, string[]][]; grouping: string[] } {
  const metrics = [...expr.matchAll(/\b((?:istio|nodemesh)_[a-z0-9_]+)\b/g)].map((m) => m[1]!);
  const selectors: [string, string[]][] = [...expr.matchAll(/\b((?:istio|nodemesh)_[a-z0-9_]+)\{([^}]*)\}/g)].map((m) => [
    m[1]!,
    [...m[2]!.matchAll(/([a-z_][a-z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]!),
  ]);
  const grouping = [...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) =>
    m[1]!
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  const labelValues = [...expr.matchAll(/label_values\([^,]+,\s*([a-z_][a-z0-9_]*)\)/g)].map((m) => m[1]!);
  return { metrics, selectors, grouping: [...grouping, ...labelValues] };
}

/** A scrape in Prometheus' text format: the families it declares (`# TYPE`), and each sample name's label names. */
export interface Exposition {
  readonly families: Set<string>;
  readonly labels: Map<string, Set<string>>;
}

export function parseExposition(texts: readonly string[]): Exposition {
  const families = new Set<string>();
  const labels = new Map<string, Set<string>>();
  for (const text of texts) {
    for (const line of text.split('\n')) {
      const type = /^# TYPE (\S+) /.exec(line);
      if (type) families.add(type[1]!);
      if (line === '' || line.startsWith('#')) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
      if (!m) continue;
      const set = labels.get(m[1]!) ?? new Set<string>();
      for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g)) set.add(l[1]!);
      labels.set(m[1]!, set);
    }
  }
  return { families, labels };
}

/** The family a sample name belongs to (a histogram's `_bucket`, `_sum`, `_count`). */
export function familyOf(name: string, families: Set<string>): string | undefined {
  if (families.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return families.has(base) ? base : undefined;
}
