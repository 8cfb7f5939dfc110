// The short fuzz run of the unit tier: every target with its unitRuns inputs (a few seconds in
// all). NM_FUZZ_SEED replays a run; the long run is `npm run fuzz -- --minutes N`.
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { TARGETS } from './targets';

const seed = process.env.NM_FUZZ_SEED ? Number(process.env.NM_FUZZ_SEED) : undefined;

describe('fuzz (short run)', () => {
  for (const t of TARGETS) {
    it(`${t.name}: ${t.what}`, async () => {
      const params = { numRuns: t.unitRuns, seed };
      if (t.async)
        await fc.assert(
          fc.asyncProperty(t.arbitrary, async (x) => void (await t.check(x))),
          params,
        );
      else
        fc.assert(
          fc.property(t.arbitrary, (x) => void t.check(x)),
          params,
        );
    }, 60_000);
  }
});
