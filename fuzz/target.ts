// A fuzz target: inputs (a fast-check arbitrary) and the check every input must pass. A check
// throws when the component under test misbehaves (an error other than the refusals it is
// documented to give, a wrong answer against a reference); anything else is a pass.
import type { Arbitrary } from 'fast-check';

export interface FuzzTarget<T = unknown> {
  readonly name: string;
  /** What is fuzzed, in a line. */
  readonly what: string;
  readonly arbitrary: Arbitrary<T>;
  /** Sync checks run as fc.property, async ones (returning a promise) as fc.asyncProperty. */
  readonly check: (input: T) => void | Promise<void>;
  readonly async?: boolean;
  /** Inputs in the unit-tier run (a few seconds at most). */
  readonly unitRuns: number;
}

export function target<T>(t: FuzzTarget<T>): FuzzTarget<unknown> {
  return t as unknown as FuzzTarget<unknown>;
}
