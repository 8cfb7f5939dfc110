// `nodemesh delete KIND NAME… [-n NS]` or `nodemesh delete -f FILE|DIR|-`.
import { CliError, type Command } from '../../cli/command';
import { ApiError } from '../api/client';
import { resolveKind } from '../resources/kinds';
import { loadDocuments, withNamespace } from './apply';
import { clientFrom, CONNECTION_HELP, connectionOptions, parse, processContext, type CliContext } from './context';
import { kindOrExit } from './get';

const HELP = `usage: nodemesh delete KIND NAME… [-n NAMESPACE]
       nodemesh delete -f FILE|DIR|- [-n NAMESPACE]
Deletes resources. Deleting a Namespace deletes everything in it.
  -n, --namespace        namespace (default: default)
  -f, --filename         delete the resources described in these files (repeatable)
      --ignore-not-found  a resource that does not exist is not an error
${CONNECTION_HELP}`;

export async function runDelete(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { values, positionals } = parse('delete', argv, {
    ...connectionOptions,
    namespace: { type: 'string', short: 'n' },
    filename: { type: 'string', short: 'f', multiple: true },
    'ignore-not-found': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    ctx.stdout.write(HELP + '\n');
    return 0;
  }
  const targets: { kind: string; name: string; namespace?: string }[] = [];
  if (values.filename?.length) {
    if (positionals.length) throw new CliError('delete: give either KIND NAME… or -f, not both', 2);
    for (const d of withNamespace(await loadDocuments(values.filename, ctx), values.namespace)) {
      const doc = d as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
      if (typeof doc.kind !== 'string' || typeof doc.metadata?.name !== 'string') throw new CliError('delete: every document needs kind and metadata.name');
      targets.push({ kind: doc.kind, name: doc.metadata.name, namespace: doc.metadata.namespace as string | undefined });
    }
  } else {
    const kind = kindOrExit(positionals[0]);
    if (positionals.length < 2) throw new CliError(`delete: give the name of the ${kind.singular} to delete`, 2);
    for (const name of positionals.slice(1)) targets.push({ kind: kind.kind, name, namespace: kind.namespaced ? (values.namespace ?? 'default') : undefined });
  }
  const client = clientFrom(values, ctx);
  let failed = 0;
  for (const t of targets) {
    const info = resolveKind(t.kind);
    if (!info) {
      ctx.stderr.write(`error: unknown kind "${t.kind}"\n`);
      failed++;
      continue;
    }
    try {
      await client.delete(info, t.name, t.namespace);
      ctx.stdout.write(`${info.singular} "${t.name}" deleted${t.namespace ? ` from ${t.namespace}` : ''}\n`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && values['ignore-not-found']) continue;
      ctx.stderr.write(`error: ${(err as Error).message}\n`);
      failed++;
    }
  }
  return failed ? 1 : 0;
}

export const deleteCommand: Command = { name: 'delete', summary: 'delete resources by name or by file', run: (argv) => runDelete(argv) };
