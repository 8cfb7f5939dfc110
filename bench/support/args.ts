// A benchmark's command line. `--help` (or `-h`) prints the options and exits 0 before anything
// runs; an unknown option or a missing value prints what was wrong and the options, and exits 2
// without a stack trace. Sizes come from `--name N` pairs (parseSizes); benchmarks with options of
// several kinds use node:util's parseArgs through benchParse, or a plain list of names through
// benchOptions.
import { basename } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';

type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** True when the arguments ask for help. Pure. */
export function wantsHelp(args: readonly string[]): boolean {
  return args.includes('--help') || args.includes('-h');
}

/** `usage: npm run bench -- NAME [--opt VALUE (default …)] … [--flag]`. Pure. */
export function usageText(bench: string, options: OptionSpec): string {
  const parts = Object.entries(options).map(([name, o]) => {
    if (o.type === 'boolean') return `[--${name}]`;
    const dflt = o.default === undefined ? '' : ` (default ${String(o.default)})`;
    return `[--${name} VALUE${dflt}]`;
  });
  return `usage: npm run bench -- ${bench} ${parts.join(' ')}`.trimEnd();
}

/** The running benchmark's name: its script's base name. */
function scriptName(): string {
  return basename(process.argv[1] ?? 'bench', '.js');
}

/** On --help print the usage (and `more`) to stdout and exit 0; otherwise return. */
function helpOrContinue(args: readonly string[], usage: string, more = ''): void {
  if (!wantsHelp(args)) return;
  process.stdout.write(`${usage}\n${more}`);
  process.exit(0);
}

/** A refused command line: the reason and the usage on stderr, exit 2, no stack trace. */
function refuse(bench: string, reason: string, usage: string): never {
  process.stderr.write(`bench ${bench}: ${reason}\n${usage}\n`);
  process.exit(2);
}

/** Print the usage and exit 0 on --help; on a parse error print it with the usage and exit 2. */
export function benchParse<T extends ParseArgsConfig>(config: T, bench = scriptName()): ReturnType<typeof parseArgs<T>> {
  const args = config.args ?? process.argv.slice(2);
  const usage = usageText(bench, config.options ?? {});
  helpOrContinue(args, usage, `(what each measures: the header of bench/${bench}.ts)\n`);
  try {
    return parseArgs({ ...config, args } as T); // the same config with the arguments made explicit
  } catch (e) {
    refuse(bench, (e as Error).message, usage);
  }
}

/** `--name N` pairs over `defaults` (each N a positive integer); --help and bad input as benchParse. */
export function parseSizes<T extends Record<string, number>>(bench: string, defaults: T, argv: readonly string[]): T {
  const options: OptionSpec = {};
  for (const [k, v] of Object.entries(defaults)) options[k] = { type: 'string', default: String(v) };
  const usage = usageText(bench, options);
  helpOrContinue(argv, usage);
  const sizes = { ...defaults };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '') ?? '';
    const value = Number(argv[i + 1]);
    if (!(key in sizes)) refuse(bench, `unknown option '${argv[i]}'`, usage);
    if (!Number.isInteger(value) || value < 1) refuse(bench, `${argv[i]} needs a positive integer, not '${argv[i + 1] ?? ''}'`, usage);
    (sizes as Record<string, number>)[key] = value;
  }
  return sizes;
}

/**
 * A benchmark's `--name value` options (strings, which the benchmark checks itself) and `--flag`
 * booleans (benchParse over a list of names).
 */
export function benchOptions<S extends string, B extends string = never>(
  strings: readonly S[],
  booleans: readonly B[] = [],
  args: string[] = process.argv.slice(2),
): Partial<Record<S, string>> & Partial<Record<B, boolean>> {
  const options: OptionSpec = {};
  for (const s of strings) options[s] = { type: 'string' };
  for (const b of booleans) options[b] = { type: 'boolean' };
  return benchParse({ args, options }).values as Partial<Record<S, string>> & Partial<Record<B, boolean>>;
}
