import { defineConfig } from 'vitest/config';

// Three tiers (DESIGN.md "Tests"): unit tests run in parallel and need nothing; kernel and lab
// tests need root and share kernel state, so each of those projects runs its files one at a time,
// and the groups run in order (unit, then kernel, then lab), never side by side.
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
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'lab',
          sequence: { groupOrder: 2 },
          include: ['**/*.lab.test.ts'],
          exclude: ['node_modules/**', 'dist/**'],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
