import { describe, expect, it } from 'vitest';
import { chaosPlan } from '../chaos';

describe("bench/chaos's plan", () => {
  it('hits every component both ways once, shuffled by the seed, never the same component twice in a row', () => {
    const components = ['control-plane@control', 'node-proxy@node1', 'node-proxy@node2', 'waypoint@wp'];
    for (const seed of [1, 2, 3, 4242, 99]) {
      let a = seed;
      const rnd = () => (a = (a * 16807) % 2147483647) / 2147483647;
      const plan = chaosPlan(components, rnd);
      expect(plan).toHaveLength(8);
      expect(new Set(plan.map((e) => `${e.action} ${e.component}`)).size).toBe(8);
      for (let i = 1; i < plan.length; i++) expect(plan[i]!.component).not.toBe(plan[i - 1]!.component);
    }
    const orders = new Set([1, 2, 3].map((seed) => JSON.stringify(chaosPlan(components, () => ((seed * 7919) % 97) / 97))));
    expect(orders.size).toBeGreaterThan(1);
  });
});
