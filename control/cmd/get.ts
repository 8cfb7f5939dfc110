// `nodemesh get KIND [NAME…] [-n NS | -A] [-l SELECTOR] [-o yaml|json|name]`: a table by default.
import { stringify } from 'yaml';
import { CliError, type Command } from '../../cli/command';
import { ApiError } from '../api/client';
import { kindNames, resolveKind, type AnyResource, type KindInfo } from '../resources/kinds';
import { clientFrom, CONNECTION_HELP, connectionOptions, parse, processContext, type CliContext } from './context';
import { formatTable } from './table';

const HELP = `usage: nodemesh get KIND [NAME…] [-n NAMESPACE | -A] [-l SELECTOR] [-o yaml|json|name]
Shows resources. KIND is one of: ${kindNames()} (singular and short names work too: svc, wl, ns, ap, pa, gtw).
  -n, --namespace        namespace (default: default)
  -A, --all-namespaces   every namespace
  -l, --selector         label selector, e.g. app=web,tier!=db
  -o, --output           yaml, json or name (default: a table)
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
  try {
    items = names.length
      ? await Promise.all(names.map((n) => client.get<AnyResource>(kind, n, namespace)))
      : (await client.list<AnyResource>(kind, namespace, values.selector)).items;
  } catch (err) {
    throw new CliError((err as Error).message, err instanceof ApiError && err.status === 404 ? 1 : 1);
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

export const getCommand: Command = { name: 'get', summary: 'show resources (table, yaml or json)', run: (argv) => runGet(argv) };
