// Unpacking the google.protobuf.Any configs the waypoint understands (HCM, tcp_proxy, the HTTP
// filters and their per-route overrides). Anything else is refused with the type URL named.
import { Any } from '../../api/gen/google/protobuf/any';
import { FilterConfig } from '../../api/gen/envoy/config/route/v3/route_components';
import { HttpConnectionManager } from '../../api/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager';
import { TcpProxy } from '../../api/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy';
import { RBAC, RBACPerRoute } from '../../api/gen/envoy/extensions/filters/http/rbac/v3/rbac';
import { RBAC as NetworkRBAC } from '../../api/gen/envoy/extensions/filters/network/rbac/v3/rbac';
import { HTTPFault } from '../../api/gen/envoy/extensions/filters/http/fault/v3/fault';
import { LocalRateLimit } from '../../api/gen/envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit';
import { Router } from '../../api/gen/envoy/extensions/filters/http/router/v3/router';
import { ConfigError } from './errors';

export const TYPE_PREFIX = 'type.googleapis.com/';

export const codecs = {
  hcm: HttpConnectionManager,
  tcpProxy: TcpProxy,
  rbac: RBAC,
  rbacPerRoute: RBACPerRoute,
  networkRbac: NetworkRBAC,
  fault: HTTPFault,
  localRateLimit: LocalRateLimit,
  router: Router,
  filterConfig: FilterConfig,
} as const;

export function typeNameOf(any: Any): string {
  return any.typeUrl.slice(any.typeUrl.lastIndexOf('/') + 1);
}

interface Decoder<M> {
  readonly $type: string;
  decode(input: Uint8Array): M;
}

/** Decode an Any that must hold `codec`'s type. */
export function unpackAs<M>(any: Any | undefined, codec: Decoder<M>, what: string): M {
  if (!any) throw new ConfigError(`${what} has no typed_config`);
  const name = typeNameOf(any);
  if (name !== codec.$type) throw new ConfigError(`${what} has typed_config of type ${name}, expected ${codec.$type}`);
  try {
    return codec.decode(any.value);
  } catch (err) {
    throw new ConfigError(`${what}: typed_config does not decode as ${name}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Pack a message (tests and fixtures build resources with it). */
export function pack<M>(codec: { readonly $type: string; encode(m: M): { finish(): Uint8Array } }, message: M): Any {
  const bytes = codec.encode(message).finish();
  return Any.fromPartial({ typeUrl: TYPE_PREFIX + codec.$type, value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) });
}

/** A per-filter config may be wrapped in envoy.config.route.v3.FilterConfig; unwrap it. */
export function unwrapFilterConfig(any: Any): { any: Any | undefined; disabled: boolean; optional: boolean } {
  if (typeNameOf(any) !== FilterConfig.$type) return { any, disabled: false, optional: false };
  const fc = unpackAs(any, FilterConfig, 'filter config');
  return { any: fc.config, disabled: fc.disabled, optional: fc.isOptional };
}
