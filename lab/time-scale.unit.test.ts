import { describe, expect, it } from 'vitest';
import { labControlPlaneEnv, labTimeout } from './time-scale';
import { apiLimitsFromEnv } from '../control/limits';

describe('labTimeout', () => {
  it('scales by NODEMESH_SPEED_FACTOR, capped at 50, and leaves the limit alone without one', () => {
    expect(labTimeout(20_000, {})).toBe(20_000);
    expect(labTimeout(20_000, { NODEMESH_SPEED_FACTOR: '0.5' })).toBe(20_000);
    expect(labTimeout(20_000, { NODEMESH_SPEED_FACTOR: 'fast' })).toBe(20_000);
    expect(labTimeout(20_000, { NODEMESH_SPEED_FACTOR: '3.5' })).toBe(70_000);
    expect(labTimeout(1_000, { NODEMESH_SPEED_FACTOR: '36' })).toBe(36_000);
    expect(labTimeout(1_000, { NODEMESH_SPEED_FACTOR: '99' })).toBe(50_000);
  });
});

describe('the lab control plane on a slow machine', () => {
  it('gets its TLS handshake and request-header limits scaled, in the variables `nodemesh control` reads', () => {
    expect(labControlPlaneEnv({})).toEqual({});
    const env = labControlPlaneEnv({ NODEMESH_SPEED_FACTOR: '4' });
    expect(env).toEqual({ NODEMESH_API_HANDSHAKE_TIMEOUT_MS: '40000', NODEMESH_API_HEADERS_TIMEOUT_MS: '40000', NODEMESH_XDS_HANDSHAKE_TIMEOUT_MS: '40000' });
    expect(apiLimitsFromEnv(env)).toEqual({ handshakeTimeoutMs: 40_000, headersTimeoutMs: 40_000 });
    // a value the user set is left as set
    expect(labControlPlaneEnv({ NODEMESH_SPEED_FACTOR: '4', NODEMESH_API_HANDSHAKE_TIMEOUT_MS: '15000' })).not.toHaveProperty(
      'NODEMESH_API_HANDSHAKE_TIMEOUT_MS',
    );
    expect(() => apiLimitsFromEnv({ NODEMESH_API_HEADERS_TIMEOUT_MS: '10s' })).toThrow(
      'NODEMESH_API_HEADERS_TIMEOUT_MS=10s: expected a whole number of milliseconds ≥ 1',
    );
    expect(apiLimitsFromEnv({})).toEqual({});
  });
});
