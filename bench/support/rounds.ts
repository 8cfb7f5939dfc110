// Figures measured over several interleaved rounds (pure): the median with its spread, and ratios
// of one mode to another both of the medians and per round (a per-round ratio pairs measurements
// taken close together in time, so it shares their noise on a shared machine).

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

/** Median (mean of the middle two for an even count), min and max; NaN everywhere when empty. */
export function spread(values: readonly number[]): Spread {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 };
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length };
}

/** "median" alone for one sample, else "median (min–max)". */
export function formatSpread(s: Spread, digits: number): string {
  if (s.n === 0) return '-';
  const f = (x: number): string => x.toFixed(digits);
  return s.n === 1 || s.min === s.max ? f(s.median) : `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}

/**
 * `a / b` of the medians, and the spread of the per-round ratios a[i] / b[i] (rounds where either
 * side is missing or b is 0 are left out).
 */
export function ratio(a: readonly number[], b: readonly number[]): { ofMedians: number; perRound: Spread } {
  const ma = spread(a).median;
  const mb = spread(b).median;
  const per: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (b[i]! > 0 && Number.isFinite(a[i]!)) per.push(a[i]! / b[i]!);
  return { ofMedians: mb > 0 ? ma / mb : Number.NaN, perRound: spread(per) };
}

/** "1.23x" or, with several rounds, "1.23x (1.10–1.31)" (the per-round ratios' range). */
export function formatRatio(r: { ofMedians: number; perRound: Spread }): string {
  if (!Number.isFinite(r.ofMedians)) return '-';
  const x = `${r.ofMedians.toFixed(2)}x`;
  return r.perRound.n > 1 ? `${x} (${r.perRound.min.toFixed(2)}–${r.perRound.max.toFixed(2)})` : x;
}

/** The order of `modes` in round `round`: rotated by one each round so no mode always runs first. */
export function roundOrder<T>(modes: readonly T[], round: number): T[] {
  if (modes.length === 0) return [];
  const k = round % modes.length;
  return [...modes.slice(k), ...modes.slice(0, k)];
}
