// One xDS resource as the server holds it: encoded once, shared by every stream that sends it.
// The version is a hash of the encoded bytes, so a resource that did not change keeps its version
// across re-translations and restarts of the control plane (a reconnecting client that presents
// it in initial_resource_versions gets nothing resent).
import { createHash } from 'node:crypto';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { Resource } from '../../api/gen/envoy/service/discovery/v3/discovery';
import { Any } from '../../api/gen/google/protobuf/any';

export interface XdsResource {
  readonly typeUrl: string;
  readonly name: string;
  readonly version: string;
  /** The encoded resource message (the value of the Any). */
  readonly value: Uint8Array;
  /**
   * The resource as a ready-made field record of DeltaDiscoveryResponse.resources (tag 2): the
   * bytes a response needs for it, built on first use and reused by every stream.
   */
  deltaRecord(): Uint8Array;
}

/** A short, stable version string for encoded bytes. */
export function versionOf(value: Uint8Array): string {
  return createHash('sha256').update(value).digest('base64url').slice(0, 16);
}

const DELTA_RESOURCES_TAG = (2 << 3) | 2; // DeltaDiscoveryResponse.resources, length-delimited

class EncodedResource implements XdsResource {
  private record: Uint8Array | undefined;
  constructor(
    readonly typeUrl: string,
    readonly name: string,
    readonly version: string,
    readonly value: Uint8Array,
  ) {}

  deltaRecord(): Uint8Array {
    if (!this.record) {
      const resource = Resource.encode(
        Resource.fromPartial({
          name: this.name,
          version: this.version,
          resource: Any.fromPartial({ typeUrl: this.typeUrl, value: Buffer.from(this.value.buffer, this.value.byteOffset, this.value.byteLength) }),
        }),
      ).finish();
      this.record = new BinaryWriter().uint32(DELTA_RESOURCES_TAG).bytes(resource).finish();
    }
    return this.record;
  }
}

/** Wrap an encoded message as a resource; the version is derived from the bytes. */
export function xdsResource(typeUrl: string, name: string, value: Uint8Array): XdsResource {
  return new EncodedResource(typeUrl, name, versionOf(value), value);
}

/** The type URL of a protobuf message type: `type.googleapis.com/<full name>`. */
export function typeUrlOf(fullName: string): string {
  return `type.googleapis.com/${fullName}`;
}
