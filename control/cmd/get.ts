// `nodemesh get KIND [NAME…] [-n NS | -A] [-l SELECTOR] [-o yaml|json|name]`: a table by default.
import { stringify } from 'yaml';
import { CliError, type Command } from '../../cli/command';
import type { ApiClient } from '../api/client';
import { kindNames, resolveKind, type AnyResource, type KindInfo } from '../resources/kinds';
import { clientFrom, CONNECTION_HELP, connectionOptions, parse, processContext, type CliContext } from './context';
import { formatTable } from './table';

const HELP = `usage: nodemesh get KIND [NAME…] [-n NAMESPACE | -A] [-l SELECTOR] [-o yaml|json|name]
Shows resources. KIND is one of: ${kindNames()} (singular and short names work too: svc, wl, ns, ap, pa, gtw).
  -n, --namespace        namespace (default: default)
  -A, --all-namespaces   every namespace
  -l, --selector         label selector, e.g. app=web,tier!=db
  -o, --output           yaml, json or name (default: a table)
  -w, --watch            after the listing, print every change until interrupted
                         (one line per change; with -o json, one JSON event per line)
${CONNECTION_HELP}`;

export function kindOrExit(text: string | undefined): KindInfo {
  if (!text) throw new CliError(`give a kind: ${kindNames()}`, 2);
  const k = resolveKind(text);
  if (!k) throw new CliError(`unknown kind "${text}": use one of ${kindNames()}`, 2);
  return k;
}

export async function runGet(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { values, positionals } = parse('get', argv, {
    ...connectionOptions,
    namespace: { type: 'string', short: 'n' },
    'all-namespaces': { type: 'boolean', short: 'A' },
    selector: { type: 'string', short: 'l' },
    output: { type: 'string', short: 'o' },
    watch: { type: 'boolean', short: 'w' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    ctx.stdout.write(HELP + '\n');
    return 0;
  }
  const kind = kindOrExit(positionals[0]);
  const names = positionals.slice(1);
  const output = values.output ?? 'table';
  if (!['table', 'wide', 'yaml', 'json', 'name'].includes(output)) throw new CliError(`get: unknown output format "${output}": use yaml, json or name`, 2);
  const all = values['all-namespaces'] ?? false;
  if (all && names.length) throw new CliError('get: -A lists every namespace; give no names with it', 2);
  const namespace = kind.namespaced ? (all ? undefined : (values.namespace ?? 'default')) : undefined;
  const client = clientFrom(values, ctx);
  let items: AnyResource[];
  let revision: number | undefined;
  try {
    if (names.length) items = await Promise.all(names.map((n) => client.get<AnyResource>(kind, n, namespace)));
    else {
      const list = await client.list<AnyResource>(kind, namespace, values.selector);
      items = list.items;
      revision = Number(list.metadata.resourceVersion);
    }
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  if (values.watch) {
    if (names.length || values.selector) throw new CliError('get --watch: watches a whole kind (in -n NS or -A); give no names or selector', 2);
    return watchChanges(client, kind, namespace, revision ?? 0, items, output === 'json', ctx);
  }
  const single = names.length === 1;
  switch (output) {
    case 'yaml':
      ctx.stdout.write(stringify(single ? items[0] : { apiVersion: 'v1', kind: 'List', items }));
      break;
    case 'json':
      ctx.stdout.write(JSON.stringify(single ? items[0] : { apiVersion: 'v1', kind: 'List', items }, null, 2) + '\n');
      break;
    case 'name':
      for (const r of items) ctx.stdout.write(`${kind.singular}/${r.metadata.name}\n`);
      break;
    default:
      if (items.length === 0) {
        ctx.stderr.write(namespace ? `No resources found in ${namespace} namespace.\n` : 'No resources found.\n');
      } else ctx.stdout.write(formatTable(items, { withNamespace: kind.namespaced && all }));
  }
  return 0;
}

/** Prints the listing, then one line per change after its revision, until SIGINT/SIGTERM. */
async function watchChanges(
  client: ApiClient,
  kind: KindInfo,
  namespace: string | undefined,
  revision: number,
  items: AnyResource[],
  json: boolean,
  ctx: CliContext,
): Promise<number> {
  const line = (type: string, r: AnyResource, rev: number): string =>
    json
      ? JSON.stringify({ type, revision: rev, object: r })
      : `${type.padEnd(9)} ${kind.singular}/${r.metadata.name}${r.metadata.namespace ? ` -n ${r.metadata.namespace}` : ''} (revision ${rev})`;
  for (const r of items) ctx.stdout.write(line('EXISTING', r, Number(r.metadata.resourceVersion)) + '\n');
  let stream;
  try {
    stream = await client.watch({ revision, kind: kind.kind, namespace }, (l) => {
      if (l.object) ctx.stdout.write(line(l.type, l.object, l.revision) + '\n');
    });
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  const s = stream;
  const stop = () => s.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await s.done;
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  return 0;
}

export const getCommand: Command = { name: 'get', summary: 'show resources (table, yaml or json)', run: (argv) => runGet(argv) };
