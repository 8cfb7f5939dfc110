import { defineConfig } from 'vitest/config';
import { scaled } from './test/support/speed';

// Three tiers (docs/architecture.md "Tests"): unit tests run in parallel and need nothing; kernel and lab
// tests need root and share kernel state, so each of those projects runs its files one at a time,
// and the groups run in order (unit, then kernel, then lab), never side by side. The privileged
// tiers' time limits scale with the machine's measured speed (test/support/speed.ts): a VM under
// TCG or a loaded runner gets longer limits instead of failing.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          sequence: { groupOrder: 0 },
          include: ['**/*.unit.test.ts'],
          exclude: ['node_modules/**', 'dist/**'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'kernel',
          sequence: { groupOrder: 1 },
          include: ['**/*.kernel.test.ts'],
          exclude: ['node_modules/**', 'dist/**'],
          fileParallelism: false,
          testTimeout: scaled(60_000),
          hookTimeout: scaled(60_000),
        },
      },
      {
        test: {
          name: 'lab',
          sequence: { groupOrder: 2 },
          include: ['**/*.lab.test.ts'],
          exclude: ['node_modules/**', 'dist/**'],
          fileParallelism: false,
          testTimeout: scaled(180_000),
          hookTimeout: scaled(180_000),
        },
      },
    ],
  },
});
