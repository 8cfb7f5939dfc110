// W3C trace context: read `traceparent` (or start a trace when it is absent or malformed), and
// make the child span the waypoint forwards upstream.
import { randomFillSync } from 'node:crypto';

export interface SpanContext {
  readonly traceId: string;
  readonly spanId: string;
  /** The caller's span, when the request carried one. */
  readonly parentSpanId: string | undefined;
  readonly sampled: boolean;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

// Random ids come from a pool filled 4 KiB at a time (one system call per ~170 requests, not two
// per request).
const pool = Buffer.alloc(4096);
let offset = pool.length;

function randomHex(bytes: number): string {
  if (offset + bytes > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const s = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
  return s;
}

export function spanFor(traceparent: string | undefined): SpanContext {
  const m = traceparent ? TRACEPARENT.exec(traceparent.trim().toLowerCase()) : null;
  if (m && m[1] !== 'ff' && !/^0+$/.test(m[2]!) && !/^0+$/.test(m[3]!)) {
    return { traceId: m[2]!, spanId: randomHex(8), parentSpanId: m[3], sampled: (parseInt(m[4]!, 16) & 1) === 1 };
  }
  return { traceId: randomHex(16), spanId: randomHex(8), parentSpanId: undefined, sampled: true };
}

export function formatTraceparent(s: SpanContext): string {
  return `00-${s.traceId}-${s.spanId}-${s.sampled ? '01' : '00'}`;
}
