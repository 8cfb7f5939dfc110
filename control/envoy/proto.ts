// Small helpers for building generated Envoy messages: the partial-message type ts-proto's
// fromPartial() accepts, and durations.
import type { Duration } from '../../api/gen/google/protobuf/duration';

type Builtin = Date | ((...args: never[]) => unknown) | Uint8Array | string | number | boolean | undefined;

/** The same shape as ts-proto's (file-private) DeepPartial, so values flow into fromPartial(). */
export type DeepPartial<T> = T extends Builtin
  ? T
  : T extends globalThis.Array<infer U>
    ? globalThis.Array<DeepPartial<U>>
    : T extends ReadonlyArray<infer U>
      ? ReadonlyArray<DeepPartial<U>>
      : T extends { $case: string; value: unknown }
        ? { $case: T['$case']; value?: DeepPartial<T['value']> }
        : T extends object
          ? { [K in Exclude<keyof T, '$type'>]?: DeepPartial<T[K]> }
          : Partial<T>;

/** A google.protobuf.Duration of `ms` milliseconds. */
export function duration(ms: number): DeepPartial<Duration> {
  const whole = Math.floor(ms);
  return { seconds: Math.floor(whole / 1000), nanos: (whole % 1000) * 1_000_000 };
}
