// google.protobuf.Duration and envoy.type.v3.FractionalPercent, as the data plane uses them.
import type { Duration } from '../../api/gen/google/protobuf/duration';
import { FractionalPercent_DenominatorType, type FractionalPercent } from '../../api/gen/envoy/type/v3/percent';

/** Milliseconds of a Duration; `fallback` when it is unset. */
export function millis(d: Duration | undefined, fallback: number): number;
export function millis(d: Duration | undefined, fallback?: number): number | undefined;
export function millis(d: Duration | undefined, fallback?: number): number | undefined {
  if (!d) return fallback;
  return Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6);
}

/** A fraction in [0, 1]; `fallback` when unset. */
export function fraction(p: FractionalPercent | undefined, fallback: number): number {
  if (!p) return fallback;
  let denominator: number;
  switch (p.denominator) {
    case FractionalPercent_DenominatorType.TEN_THOUSAND:
      denominator = 10_000;
      break;
    case FractionalPercent_DenominatorType.MILLION:
      denominator = 1_000_000;
      break;
    default:
      denominator = 100;
  }
  return Math.min(1, p.numerator / denominator);
}
