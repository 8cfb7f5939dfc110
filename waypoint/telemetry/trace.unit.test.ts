// W3C trace context at the waypoint (trace.ts): ids cut from the pools of random text are
// well-formed and never handed out twice, across pool refills; a valid traceparent is continued,
// anything else starts a new trace; x-request-id values are UUIDs v4, none handed out twice.
import { describe, expect, it } from 'vitest';
import { formatTraceparent, requestId, spanFor } from './trace';

describe('requestId', () => {
  it('hands out version-4 UUIDs, none repeated across several pool refills', () => {
    const seen = new Set<string>();
    // 1,000 ids: ~8 refills of the 128-id pool.
    for (let i = 0; i < 1000; i++) {
      const id = requestId();
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(seen.has(id)).toBe(false);
      seen.add(id);
    }
  });
});

describe('spanFor', () => {
  it('starts traces with well-formed ids, none repeated across several pool refills', () => {
    const seen = new Set<string>();
    // 1,000 new traces: ~8 refills of the pool of 128 formatted traceparents.
    for (let i = 0; i < 1000; i++) {
      const s = spanFor(undefined);
      expect(s.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(s.spanId).toMatch(/^[0-9a-f]{16}$/);
      expect(s.parentSpanId).toBeUndefined();
      expect(s.sampled).toBe(true);
      expect(seen.has(s.traceId) || seen.has(s.spanId)).toBe(false);
      seen.add(s.traceId);
      seen.add(s.spanId);
      expect(formatTraceparent(s)).toBe(`00-${s.traceId}-${s.spanId}-01`);
    }
  });

  it('continues a valid traceparent with a new span id, and starts a new trace for anything else', () => {
    const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parent = '00f067aa0ba902b7';
    const s = spanFor(`00-${trace}-${parent}-00`);
    expect(s).toMatchObject({ traceId: trace, parentSpanId: parent, sampled: false });
    expect(s.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(s.spanId).not.toBe(parent);
    expect(formatTraceparent(s)).toBe(`00-${trace}-${s.spanId}-00`);
    expect(spanFor(` 00-${trace.toUpperCase()}-${parent}-01 `)).toMatchObject({ traceId: trace, parentSpanId: parent, sampled: true });
    for (const bad of [
      `ff-${trace}-${parent}-01`,
      `00-${'0'.repeat(32)}-${parent}-01`,
      `00-${trace}-${'0'.repeat(16)}-01`,
      `00-${trace}-${parent}`,
      'garbage',
    ]) {
      const n = spanFor(bad);
      expect(n.parentSpanId, bad).toBeUndefined();
      expect(n.traceId, bad).not.toBe(trace);
    }
  });
});
