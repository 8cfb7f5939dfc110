// Reading the node proxies' Prometheus text (pure parsing + one scrape per node): the demo counts
// connections the backends' node proxies opened, per source identity.
import type { LabTopology } from '../state';
import { netnsGet } from '../../native/netns-http';
import { METRICS_PORT } from '../../common/contracts/ports';

export interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** The samples of one metric in Prometheus text format. */
export function samples(text: string, name: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    const labels: Record<string, string> = {};
    for (const m of line.slice(name.length + 1, close).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[m[1] as string] = (m[2] as string).replace(/\\(.)/g, '$1');
    out.push({ labels, value: Number(line.slice(close + 1).trim()) });
  }
  return out;
}

/** Sums a metric by one label over the samples `keep` accepts. */
export function sumBy(text: string, name: string, by: string, keep: (l: Record<string, string>) => boolean): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples(text, name)) if (keep(s.labels)) out.set(s.labels[by] ?? '', (out.get(s.labels[by] ?? '') ?? 0) + s.value);
  return out;
}

/** Every node proxy's /metrics, concatenated (a node that does not answer adds nothing). */
export async function scrapeNodeProxies(t: LabTopology): Promise<string> {
  const texts = await Promise.all(
    t.nodes.map((n) =>
      netnsGet(n.netnsPath, '127.0.0.1', METRICS_PORT, '/metrics', {}, 3000).then(
        (r) => r.body,
        () => '',
      ),
    ),
  );
  return texts.join('\n');
}
