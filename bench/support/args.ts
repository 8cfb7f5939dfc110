// Benchmark sizes from `--name N` pairs: every name must be one of the defaults' keys, every value
// a positive integer. Or, for benchmarks with options of several kinds, node:util's parseArgs
// over a list of names (benchOptions).
import { parseArgs } from 'node:util';

export function parseSizes<T extends Record<string, number>>(bench: string, defaults: T, argv: readonly string[]): T {
  const sizes = { ...defaults };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '') ?? '';
    const value = Number(argv[i + 1]);
    if (!(key in sizes) || !Number.isInteger(value) || value < 1) {
      const usage = Object.keys(defaults)
        .map((k) => `[--${k} N]`)
        .join(' ');
      throw new Error(`usage: ${bench} ${usage} (bad: ${argv[i]} ${argv[i + 1]})`);
    }
    (sizes as Record<string, number>)[key] = value;
  }
  return sizes;
}

/**
 * A benchmark's `--name value` options (strings, which the benchmark checks itself) and `--flag`
 * booleans, parsed by node:util's parseArgs: an unknown option or a missing value is refused there.
 */
export function benchOptions<S extends string, B extends string = never>(
  strings: readonly S[],
  booleans: readonly B[] = [],
  args: string[] = process.argv.slice(2),
): Partial<Record<S, string>> & Partial<Record<B, boolean>> {
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const s of strings) options[s] = { type: 'string' };
  for (const b of booleans) options[b] = { type: 'boolean' };
  return parseArgs({ args, options }).values as Partial<Record<S, string>> & Partial<Record<B, boolean>>;
}
