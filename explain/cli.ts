// `nodemesh explain FROM TO[:PORT] [--method M] [--path P] [-o json] [--observed]`: asks the
// control plane's GET /v1/explain (the evaluation runs there, over its current state) and prints
// the path, identities, waypoint route, policy decisions and the verdict. In the netns lab it finds
// the control plane by itself, as the other config commands do (--lab).
import { CliError, type Command } from '../cli/command';
import { ApiError, type ApiClient } from '../control/api/client';
import { clientFrom, CONNECTION_HELP, connectionOptions, parse, processContext, type CliContext } from '../control/cmd/context';
import type { Explanation, Observed } from './model';
import { observedQueries, summarizeObserved, type ObservedRecordLike } from './observed';
import { formatExplanation } from './text';

const HELP = `usage: nodemesh explain FROM TO[:PORT] [--port N] [--method M] [--path P] [-o text|json]
Why a connection FROM -> TO would be allowed, denied or sent where: capture, the path (same node,
HBONE to which node, which waypoint, passthrough), the identities on each hop, the waypoint's
route and backends, every policy that decides it with the rule that matched, and a verdict.
Evaluated by the control plane with the node proxy's and the waypoint's own code over the
configuration it sends them (docs/explain.md).
  FROM            a workload (ns/name), a pod name, or an IP address (outside the mesh)
  TO              a Service (name.ns or name.ns.svc.cluster.local), a workload (ns/name), a pod
                  name, or an IP address; :PORT may be left out when it has exactly one port
  --port N        the destination port (instead of TO:PORT)
  --method M      the HTTP method a waypoint sees (default GET)
  --path P        the HTTP path a waypoint sees (default /)
  -o, --output F  text (default) or json (the shape is documented in docs/explain.md)
  --observed      also show what the proxies recorded for this pair in the last 5 minutes (from
                  the control plane's gatherer of their recent access records)

${CONNECTION_HELP}`;

export async function runExplain(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { values, positionals } = parse('explain', argv, {
    ...connectionOptions,
    port: { type: 'string' },
    method: { type: 'string' },
    path: { type: 'string' },
    output: { type: 'string', short: 'o' },
    observed: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return (ctx.stdout.write(HELP + '\n'), 0);
  if (positionals.length !== 2)
    throw new CliError(`explain: give FROM and TO[:PORT] (got ${positionals.length} argument(s)); see 'nodemesh explain --help'`, 2);
  const output = values.output ?? 'text';
  if (output !== 'text' && output !== 'json') throw new CliError(`explain: -o must be text or json, not "${output}"`, 2);
  let port: number | undefined;
  if (values.port !== undefined) {
    port = Number(values.port);
    if (!/^\d+$/.test(values.port) || port < 1 || port > 65535) throw new CliError(`explain: --port must be 1..65535, got "${values.port}"`, 2);
  }
  const [from, to] = positionals as [string, string];
  let e: Explanation;
  const client = clientFrom(values, ctx);
  try {
    e = await client.explain<Explanation>({ from, to, port, method: values.method, path: values.path });
    if (values.observed) e = { ...e, observed: await observed(client, e) };
  } catch (err) {
    if (err instanceof ApiError) throw new CliError(`explain: ${err.message}`, err.status === 400 ? 2 : 1);
    throw new CliError(`explain: ${(err as Error).message}`, 1);
  }
  ctx.stdout.write(output === 'json' ? JSON.stringify(e, null, 2) + '\n' : formatExplanation(e) + '\n');
  return 0;
}

/** What the proxies recorded for the pair (GET /debug/observe/records, control/observe). */
async function observed(client: ApiClient, e: Explanation): Promise<Observed> {
  const pages: ObservedRecordLike[][] = [];
  for (const q of observedQueries(e)) {
    try {
      pages.push((await client.debug<{ records?: ObservedRecordLike[] }>(`observe/records?${q.toString()}`)).records ?? []);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404)
        return { records: [], summary: "not available: this control plane does not gather the proxies' recent records (GET /debug/observe/records)" };
      throw err;
    }
  }
  return summarizeObserved(pages);
}

export const explainCommand: Command = {
  name: 'explain',
  summary: 'why a connection FROM -> TO is allowed, denied or sent where (path, identities, waypoint route, policies, verdict)',
  run: (argv) => runExplain(argv),
};
