// W3C trace context: read `traceparent` (or start a trace when it is absent or malformed), and
// make the child span the waypoint forwards upstream.
import { randomBytes } from 'node:crypto';

export interface SpanContext {
  readonly traceId: string;
  readonly spanId: string;
  /** The caller's span, when the request carried one. */
  readonly parentSpanId: string | undefined;
  readonly sampled: boolean;
  /** The traceparent forwarded upstream, when it was made with the ids (a new trace). */
  readonly traceparent: string | undefined;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * Random strings of one fixed form and `length`, made `perPool` at a time from one draw of random
 * bytes (`bytesEach` per string, `format` turning them into text) and handed out as slices of one
 * string, each once: no random draw, hex encoding or string building per request.
 */
function pooled(length: number, bytesEach: number, perPool: number, format: (b: Buffer, at: number) => string): () => string {
  let pool = '';
  let taken = 0;
  return () => {
    if (taken >= pool.length) {
      const b = randomBytes(bytesEach * perPool);
      const all: string[] = [];
      for (let i = 0; i < b.length; i += bytesEach) all.push(format(b, i));
      pool = all.join('');
      taken = 0;
    }
    const s = pool.slice(taken, taken + length);
    taken += length;
    return s;
  };
}

/** A span id of a continued trace: 16 hex digits. */
const newSpanId = pooled(16, 8, 256, (b, i) => b.toString('hex', i, i + 8));

/** x-request-id values: UUIDs (v4, RFC 9562). */
export const requestId = pooled(36, 16, 128, (b, i) => {
  b[i + 6] = (b[i + 6]! & 0x0f) | 0x40; // version 4
  b[i + 8] = (b[i + 8]! & 0x3f) | 0x80; // variant 10
  const h = b.toString('hex', i, i + 16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
});

/** A new trace's traceparent, whole (its trace and span ids are slices of it): sampled, version 00. */
const newTraceparent = pooled(55, 24, 128, (b, i) => `00-${b.toString('hex', i, i + 16)}-${b.toString('hex', i + 16, i + 24)}-01`);

export function spanFor(traceparent: string | undefined): SpanContext {
  const m = traceparent ? TRACEPARENT.exec(traceparent.trim().toLowerCase()) : null;
  if (m && m[1] !== 'ff' && !/^0+$/.test(m[2]!) && !/^0+$/.test(m[3]!)) {
    return { traceId: m[2]!, spanId: newSpanId(), parentSpanId: m[3], sampled: (parseInt(m[4]!, 16) & 1) === 1, traceparent: undefined };
  }
  const tp = newTraceparent();
  return { traceId: tp.slice(3, 35), spanId: tp.slice(36, 52), parentSpanId: undefined, sampled: true, traceparent: tp };
}

export function formatTraceparent(s: SpanContext): string {
  return s.traceparent ?? `00-${s.traceId}-${s.spanId}-${s.sampled ? '01' : '00'}`;
}
