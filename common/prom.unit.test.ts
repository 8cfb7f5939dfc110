import * as promClient from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Counter, Gauge, Registry, register } from './prom';

describe('common/prom', () => {
  it('gives prom-client’s own classes and global registry, so registries made either way mix', async () => {
    expect(Registry).toBe(promClient.Registry);
    expect(Counter).toBe(promClient.Counter);
    expect(Gauge).toBe(promClient.Gauge);
    expect(register).toBe(promClient.register);
    const r = new Registry();
    new Counter({ name: 'nm_test_total', help: 'h', registers: [r] }).inc(2);
    const merged = promClient.Registry.merge([r, new promClient.Registry()]);
    expect(await merged.metrics()).toContain('nm_test_total 2');
  });
});
