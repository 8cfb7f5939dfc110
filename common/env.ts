// Settings read from the environment at start-up. One reader per kind of value, so every variable
// is refused the same way: a value that is not understood stops the process, naming the variable,
// instead of running with a setting the user did not mean.

/**
 * Whole milliseconds from the variable `name`: `fallback` where unset or empty. Anything else than
 * a whole number ≥ `min` throws, naming the variable and what it expects. Pure.
 */
export function millisFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number): number;
export function millisFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: undefined, min: number): number | undefined;
export function millisFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number | undefined, min: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) throw new Error(`${name}=${raw}: expected a whole number of milliseconds ≥ ${min}`);
  return v;
}
