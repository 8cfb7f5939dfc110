// google.protobuf.Any packing and unpacking by type URL, through the generated type registry
// (api/gen/typeRegistry.ts): every generated message type registers itself there under its full
// name when its module is loaded, so a type URL names the codec to use.
import { Any } from '../../api/gen/google/protobuf/any';
import { messageTypeRegistry, type MessageType, type UnknownMessage } from '../../api/gen/typeRegistry';

const TYPE_URL_PREFIX = 'type.googleapis.com/';

/** A generated message codec, as ts-proto emits it. */
export interface MessageCodec<M> {
  readonly $type: string;
  encode(message: M): { finish(): Uint8Array };
  decode(input: Uint8Array): M;
  fromPartial(object: never): M;
}

/** `type.googleapis.com/<full name>` for a generated message codec. */
export function typeUrl(codec: { readonly $type: string }): string {
  return TYPE_URL_PREFIX + codec.$type;
}

/** The full message name of a type URL (whatever its host part). */
export function typeNameOf(url: string): string {
  return url.slice(url.lastIndexOf('/') + 1);
}

/** Pack a message into an Any. */
export function pack<M>(codec: { readonly $type: string; encode(message: M): { finish(): Uint8Array } }, message: M): Any {
  const bytes = codec.encode(message).finish();
  return Any.fromPartial({ typeUrl: typeUrl(codec), value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) });
}

/** The registered codec for a type URL, or an error that says which types are known. */
export function codecFor(url: string): MessageType {
  const name = typeNameOf(url);
  const codec = messageTypeRegistry.get(name);
  if (!codec) {
    throw new Error(
      `cannot unpack google.protobuf.Any of type ${url}: no generated type ${name} is loaded ` + '(add its proto to scripts/codegen.sh and import its module)',
    );
  }
  return codec;
}

/** Unpack an Any into its message, whatever its type. */
export function unpackAny(any: Any): UnknownMessage {
  return codecFor(any.typeUrl).decode(any.value);
}

/** Unpack an Any that must be of the codec's type; a different type URL is an error. */
export function unpack<M>(codec: { readonly $type: string; decode(input: Uint8Array): M }, any: Any): M {
  const name = typeNameOf(any.typeUrl);
  if (name !== codec.$type) throw new Error(`expected google.protobuf.Any of type ${codec.$type}, got ${any.typeUrl || '(empty type URL)'}`);
  return codec.decode(any.value);
}
