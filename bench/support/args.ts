// Benchmark sizes from `--name N` pairs: every name must be one of the defaults' keys, every value
// a positive integer.

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
