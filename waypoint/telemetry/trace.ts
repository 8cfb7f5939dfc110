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

// Random ids are cut from a pool of random hex text: 4 KiB of random bytes drawn and hex-encoded
// at once (~170 requests' ids), each character handed out once — no hex encoding per request.
const POOL_BYTES = 4096;
let hexPool = '';
let hexTaken = 0;

function randomHex(bytes: number): string {
  const n = 2 * bytes;
  if (hexTaken + n > hexPool.length) {
    hexPool = randomBytes(POOL_BYTES).toString('hex');
    hexTaken = 0;
  }
  const s = hexPool.slice(hexTaken, hexTaken + n);
  hexTaken += n;
  return s;
}

// x-request-id values are UUIDs (v4, RFC 9562) cut from a pool of formatted ids: 128 of them drawn
// and formatted at once, each handed out once as a slice of the pool's text (node's randomUUID
// formats every id from its own cache of random bytes, a string built piece by piece).
const UUIDS_PER_POOL = 128;
let uuidPool = '';
let uuidTaken = 0;

export function requestId(): string {
  if (uuidTaken >= uuidPool.length) {
    const b = randomBytes(16 * UUIDS_PER_POOL);
    const ids: string[] = [];
    for (let i = 0; i < b.length; i += 16) {
      b[i + 6] = (b[i + 6]! & 0x0f) | 0x40; // version 4
      b[i + 8] = (b[i + 8]! & 0x3f) | 0x80; // variant 10
      const h = b.toString('hex', i, i + 16);
      ids.push(`${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`);
    }
    uuidPool = ids.join('');
    uuidTaken = 0;
  }
  const id = uuidPool.slice(uuidTaken, uuidTaken + 36);
  uuidTaken += 36;
  return id;
}

// A new trace's traceparent comes whole from a pool of formatted ones (128 drawn at once), its trace
// and span ids slices of it: no header built (and later flattened) per request.
const TRACEPARENTS_PER_POOL = 128;
const TRACEPARENT_LENGTH = 55;
let traceparentPool = '';
let traceparentTaken = 0;

function newTraceparent(): string {
  if (traceparentTaken >= traceparentPool.length) {
    const hex = randomBytes(24 * TRACEPARENTS_PER_POOL).toString('hex');
    const all: string[] = [];
    for (let i = 0; i < hex.length; i += 48) all.push(`00-${hex.slice(i, i + 32)}-${hex.slice(i + 32, i + 48)}-01`);
    traceparentPool = all.join('');
    traceparentTaken = 0;
  }
  const tp = traceparentPool.slice(traceparentTaken, traceparentTaken + TRACEPARENT_LENGTH);
  traceparentTaken += TRACEPARENT_LENGTH;
  return tp;
}

export function spanFor(traceparent: string | undefined): SpanContext {
  const m = traceparent ? TRACEPARENT.exec(traceparent.trim().toLowerCase()) : null;
  if (m && m[1] !== 'ff' && !/^0+$/.test(m[2]!) && !/^0+$/.test(m[3]!)) {
    return { traceId: m[2]!, spanId: randomHex(8), parentSpanId: m[3], sampled: (parseInt(m[4]!, 16) & 1) === 1, traceparent: undefined };
  }
  const tp = newTraceparent();
  return { traceId: tp.slice(3, 35), spanId: tp.slice(36, 52), parentSpanId: undefined, sampled: true, traceparent: tp };
}

export function formatTraceparent(s: SpanContext): string {
  return s.traceparent ?? `00-${s.traceId}-${s.spanId}-${s.sampled ? '01' : '00'}`;
}
