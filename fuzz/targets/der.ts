// The node proxy's hand-written DER reader (common/identity/der.ts) through uriSans (san.ts), which
// reads a peer's SPIFFE ID out of its certificate. It only ever sees certificates OpenSSL has
// already verified, but it is the one parser of peer bytes not from a library, so: on
// certificate-shaped DER (SAN extension first, among others, or absent) it gives exactly the URI
// names put in, in order; on any mutation of those bytes (flips, truncation, inserted or removed
// bytes, lengths rewritten) it gives a list of strings or throws its own `DER: …` error — never
// another error, never reads past the input, never hangs.
import fc from 'fast-check';
import { DER, oid, tlv } from '../../common/identity/der';
import { uriSans } from '../../common/identity/san';
import { target } from '../target';

const SAN = oid('2.5.29.17');
const KEY_USAGE = oid('2.5.29.15');
const ECDSA_SHA256 = tlv(DER.SEQUENCE, oid('1.2.840.10045.4.3.2'));

type GeneralName = { readonly kind: 'uri' | 'dns' | 'ip'; readonly value: string };

interface Shape {
  /** null: no extensions at all; otherwise the names of the SAN extension (undefined: no SAN). */
  readonly names: readonly GeneralName[] | null | undefined;
  readonly critical: boolean;
  readonly keyUsageFirst: boolean;
  readonly serial: Uint8Array;
  readonly padding: number;
}

const generalName = (n: GeneralName): Buffer => {
  if (n.kind === 'uri') return tlv(DER.contextPrimitive(6), Buffer.from(n.value, 'latin1'));
  if (n.kind === 'dns') return tlv(DER.contextPrimitive(2), Buffer.from(n.value, 'latin1'));
  return tlv(DER.contextPrimitive(7), Buffer.from([10, 0, 0, n.value.length & 0xff]));
};

/** A certificate's DER in X.509's shape (the signature and key are filler: uriSans does not verify). */
function certificate(s: Shape): Buffer {
  const extensions: Buffer[] = [];
  const keyUsage = tlv(DER.SEQUENCE, KEY_USAGE, tlv(DER.BOOLEAN, Buffer.from([0xff])), tlv(DER.OCTET_STRING, tlv(DER.BIT_STRING, Buffer.from([7, 0x80]))));
  if (s.names !== null) {
    if (s.keyUsageFirst) extensions.push(keyUsage);
    if (s.names !== undefined) {
      const value = tlv(DER.OCTET_STRING, tlv(DER.SEQUENCE, ...s.names.map(generalName)));
      extensions.push(s.critical ? tlv(DER.SEQUENCE, SAN, tlv(DER.BOOLEAN, Buffer.from([0xff])), value) : tlv(DER.SEQUENCE, SAN, value));
    }
    if (!s.keyUsageFirst) extensions.push(keyUsage);
  }
  const name = tlv(DER.SEQUENCE, tlv(DER.SET, tlv(DER.SEQUENCE, oid('2.5.4.3'), tlv(0x0c, Buffer.from('fuzz')))));
  const time = tlv(0x17, Buffer.from('261205000000Z'));
  const tbs = tlv(
    DER.SEQUENCE,
    tlv(DER.context(0), tlv(DER.INTEGER, Buffer.from([2]))),
    tlv(DER.INTEGER, s.serial.length > 0 ? s.serial : Buffer.from([1])),
    ECDSA_SHA256,
    name,
    tlv(DER.SEQUENCE, time, time),
    name,
    tlv(DER.SEQUENCE, ECDSA_SHA256, tlv(DER.BIT_STRING, Buffer.alloc(1 + s.padding, 4))),
    ...(s.names === null ? [] : [tlv(DER.context(3), tlv(DER.SEQUENCE, ...extensions))]),
  );
  return tlv(DER.SEQUENCE, tbs, ECDSA_SHA256, tlv(DER.BIT_STRING, Buffer.alloc(72, 0x30)));
}

type Mutation =
  | { readonly op: 'flip'; readonly at: number; readonly byte: number }
  | { readonly op: 'truncate'; readonly at: number }
  | { readonly op: 'insert'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly op: 'remove'; readonly at: number; readonly count: number }
  | { readonly op: 'length'; readonly at: number; readonly byte: number };

function mutate(der: Buffer, ms: readonly Mutation[]): Buffer {
  let b = der;
  for (const m of ms) {
    const at = b.length === 0 ? 0 : m.at % b.length;
    if (m.op === 'flip' || m.op === 'length') {
      b = Buffer.from(b);
      // 'length' aims at a byte after a tag: where the lengths are (0x80-0x84 and 0xff test the long forms).
      if (b.length > 0) b[m.op === 'length' ? Math.min(b.length - 1, at | 1) : at] = m.byte;
    } else if (m.op === 'truncate') b = b.subarray(0, at);
    else if (m.op === 'insert') b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
    else b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.count)]);
  }
  return b;
}

const nameText = fc.string({ unit: 'binary-ascii', maxLength: 40 });
const shape: fc.Arbitrary<Shape> = fc.record({
  names: fc.oneof(
    fc.constant(null),
    fc.constant(undefined),
    fc.array(fc.record({ kind: fc.constantFrom('uri', 'dns', 'ip'), value: fc.oneof(nameText, fc.constant('spiffe://cluster.local/ns/shop/sa/web')) }), {
      maxLength: 6,
    }),
  ),
  critical: fc.boolean(),
  keyUsageFirst: fc.boolean(),
  serial: fc.uint8Array({ minLength: 0, maxLength: 20 }),
  // pushes the tbsCertificate's lengths across the one-, two- and three-byte length forms
  padding: fc.constantFrom(0, 60, 300, 70_000),
});
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 6 }) }),
  fc.record({ op: fc.constant('remove' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ op: fc.constant('length' as const), at: fc.nat(), byte: fc.constantFrom(0x00, 0x7f, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0xff) }),
);

interface Input {
  readonly shape: Shape;
  readonly mutations: readonly Mutation[];
}

export const derTarget = target({
  name: 'der-san',
  what: 'uriSans (common/identity/der.ts + san.ts) on certificate-shaped DER and on mutations of it: the URI names put in, or a DER error',
  arbitrary: fc.record({ shape, mutations: fc.array(mutation, { maxLength: 4 }) }),
  unitRuns: 1_500,
  check: (i: Input) => {
    const der = certificate(i.shape);
    if (i.mutations.length === 0) {
      const want = (i.shape.names ?? []).filter((n) => n.kind === 'uri').map((n) => n.value);
      const got = uriSans(der);
      if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`read ${JSON.stringify(got)}, put in ${JSON.stringify(want)}`);
      return;
    }
    const bytes = mutate(der, i.mutations);
    // A copy with guard bytes on both sides: the reader must stay inside the view it was given.
    const guarded = Buffer.concat([Buffer.from([0x30, 0x84]), bytes, Buffer.from([0x86, 0x7f, 0xff])]);
    const view = guarded.subarray(2, 2 + bytes.length);
    let got: string[];
    try {
      got = uriSans(view);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('DER: ')) return;
      throw new Error(`threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)} (not a DER error)`);
    }
    if (!Array.isArray(got) || got.some((s) => typeof s !== 'string')) throw new Error('not a list of strings');
    const inside = view.toString('latin1');
    for (const s of got) if (!inside.includes(s)) throw new Error(`a name not in the input: ${JSON.stringify(s)}`);
  },
});
