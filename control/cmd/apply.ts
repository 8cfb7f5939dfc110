// `nodemesh apply -f FILE|DIR|- …`: sends every document to the control plane in one all-or-nothing
// apply. Documents without a namespace get -n's (else `default`).
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CliError, type Command } from '../../cli/command';
import { ApiError } from '../api/client';
import { DocumentError, parseDocuments } from '../api/documents';
import { resolveKind } from '../resources/kinds';
import { clientFrom, CONNECTION_HELP, connectionOptions, parse, processContext, type CliContext } from './context';

const HELP = `usage: nodemesh apply -f FILE|DIR|- [-f …] [-n NAMESPACE] [--dry-run]
Creates or updates resources from YAML or JSON (several documents per file allowed; a directory
means its *.yaml, *.yml and *.json files). All documents are applied together: if one is invalid,
none is written.
  -f, --filename     file, directory, or - for stdin (repeatable)
  -n, --namespace    namespace for documents that name none (default: default)
      --dry-run      validate on the server, write nothing
${CONNECTION_HELP}`;

export async function readStdin(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads and parses every -f source, in order; directories are read sorted by file name. */
export async function loadDocuments(sources: readonly string[], ctx: CliContext): Promise<unknown[]> {
  const docs: unknown[] = [];
  for (const src of sources) {
    let files: string[];
    if (src === '-') {
      docs.push(...parseOrExit(await readStdin(ctx.stdin), 'stdin'));
      continue;
    }
    try {
      const st = await stat(src);
      files = st.isDirectory()
        ? (await readdir(src))
            .filter((f) => /\.(ya?ml|json)$/.test(f))
            .sort()
            .map((f) => join(src, f))
        : [src];
    } catch (err) {
      throw new CliError(`cannot read ${src}: ${(err as Error).message}`);
    }
    if (files.length === 0) throw new CliError(`${src} holds no *.yaml, *.yml or *.json files`);
    for (const f of files) docs.push(...parseOrExit(await readFile(f, 'utf8'), f));
  }
  return docs;
}

function parseOrExit(text: string, source: string): unknown[] {
  try {
    return parseDocuments(text, source);
  } catch (err) {
    if (err instanceof DocumentError) throw new CliError(err.message);
    throw err;
  }
}

/** Fills in the namespace of namespaced documents that have none; refuses a mismatch with -n. */
export function withNamespace(docs: unknown[], namespace: string | undefined): unknown[] {
  return docs.map((d, i) => {
    const doc = d as { kind?: unknown; metadata?: Record<string, unknown> };
    const info = typeof doc.kind === 'string' ? resolveKind(doc.kind) : undefined;
    if (!info?.namespaced || typeof doc.metadata !== 'object' || doc.metadata === null) return d;
    const own = doc.metadata.namespace;
    if (own !== undefined && namespace !== undefined && own !== namespace) {
      throw new CliError(
        `document ${i + 1} (${String(doc.kind)} ${String(doc.metadata.name)}) is in namespace "${String(own)}", not "${namespace}" given by -n`,
      );
    }
    return own === undefined ? { ...doc, metadata: { ...doc.metadata, namespace: namespace ?? 'default' } } : d;
  });
}

export function describeResult(kind: string, name: string, action: string, dryRun: boolean): string {
  const info = resolveKind(kind);
  return `${info?.singular ?? kind.toLowerCase()}/${name} ${action}${dryRun ? ' (dry run)' : ''}`;
}

export async function runApply(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { values } = parse(
    'apply',
    argv,
    {
      ...connectionOptions,
      filename: { type: 'string', short: 'f', multiple: true },
      namespace: { type: 'string', short: 'n' },
      'dry-run': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    false,
  );
  if (values.help) {
    ctx.stdout.write(HELP + '\n');
    return 0;
  }
  if (!values.filename?.length) throw new CliError('apply: give at least one -f FILE|DIR|-', 2);
  const docs = withNamespace(await loadDocuments(values.filename, ctx), values.namespace);
  if (docs.length === 0) throw new CliError('apply: the given files hold no resources');
  const client = clientFrom(values, ctx);
  const dryRun = values['dry-run'] ?? false;
  try {
    const res = await client.apply(docs, { dryRun });
    for (const w of res.warnings) ctx.stderr.write(`Warning: ${w}\n`);
    for (const r of res.results) ctx.stdout.write(describeResult(r.kind, r.name, r.action, dryRun) + '\n');
    return 0;
  } catch (err) {
    if (err instanceof ApiError) throw new CliError(err.status === 400 ? `nothing was applied:\n${err.message}` : err.message);
    throw new CliError((err as Error).message);
  }
}

export const applyCommand: Command = { name: 'apply', summary: 'create or update resources from YAML/JSON files', run: (argv) => runApply(argv) };
