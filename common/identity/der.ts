// The few DER (ASN.1) pieces the node proxy needs: encoding a PKCS#10 request's fixed shape and
// walking a certificate to its extensions. Why not a library: @peculiar/x509 with its ASN.1 stack
// (asn1js, @peculiar/asn1-*, tsyringe, reflect-metadata) costs a node proxy ~3 MiB of V8 heap for
// these two structures, and @fidm/asn1 1.0.4, the small one, throws encoding a context-specific
// tag. The control plane's CA keeps @peculiar/x509 (control/ca), where it builds whole certificates.

/** Tag bytes (class | constructed | number) used here. */
export const DER = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  OID: 0x06,
  SEQUENCE: 0x30,
  SET: 0x31,
  /** [n] IMPLICIT/EXPLICIT, constructed */
  context: (n: number): number => 0xa0 | n,
  /** [n] IMPLICIT, primitive */
  contextPrimitive: (n: number): number => 0x80 | n,
} as const;

/** One TLV: `tag`, the definite length, `content` (the parts concatenated). */
export function tlv(tag: number, ...content: Uint8Array[]): Buffer {
  const body = Buffer.concat(content);
  const n = body.length;
  let head: number[];
  if (n < 0x80) head = [tag, n];
  else if (n < 0x100) head = [tag, 0x81, n];
  else if (n < 0x10000) head = [tag, 0x82, n >> 8, n & 0xff];
  else if (n < 0x1000000) head = [tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  else throw new RangeError(`DER: ${n} bytes is longer than this encoder takes`);
  return Buffer.concat([Buffer.from(head), body]);
}

/** An OBJECT IDENTIFIER in dotted form, encoded. */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0)) throw new Error(`DER: '${dotted}' is not an object identifier`);
  const out = [40 * (arcs[0] as number) + (arcs[1] as number)];
  for (const arc of arcs.slice(2)) {
    const base128 = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) base128.unshift((v & 0x7f) | 0x80);
    out.push(...base128);
  }
  return tlv(DER.OID, Buffer.from(out));
}

/** One element read from DER: its tag byte and the content bytes (a view of the input). */
export interface DerElement {
  readonly tag: number;
  readonly content: Buffer;
}

/**
 * The elements of `buf` in order (the content of a SEQUENCE, SET or constructed tag). Throws on
 * anything that is not well-formed DER within `buf`: high tag numbers, indefinite or overlong
 * lengths, an element running past the end.
 */
export function derChildren(buf: Buffer): DerElement[] {
  const out: DerElement[] = [];
  let at = 0;
  while (at < buf.length) {
    const tag = buf[at] as number;
    if ((tag & 0x1f) === 0x1f) throw new Error('DER: high tag numbers are not expected here');
    let len = buf[at + 1];
    at += 2;
    if (len === undefined) throw new Error('DER: truncated element');
    if (len & 0x80) {
      const bytes = len & 0x7f;
      if (bytes === 0 || bytes > 4) throw new Error('DER: indefinite or overlong length');
      if (at + bytes > buf.length) throw new Error('DER: truncated length');
      len = 0;
      for (let i = 0; i < bytes; i++) len = len * 256 + (buf[at + i] as number);
      at += bytes;
    }
    if (at + len > buf.length) throw new Error('DER: element runs past the end');
    out.push({ tag, content: buf.subarray(at, at + len) });
    at += len;
  }
  return out;
}

/** The one element `buf` holds, which must have `tag`. */
export function derOne(buf: Buffer, tag: number, what: string): DerElement {
  const [e, ...rest] = derChildren(buf);
  if (!e || rest.length > 0 || e.tag !== tag) throw new Error(`DER: ${what} is not one element of tag 0x${tag.toString(16)}`);
  return e;
}
