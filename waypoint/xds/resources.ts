// The four Envoy types the waypoint follows over delta ADS (common/xds), described as ResourceTypes
// whose decode step also compiles the resource. A resource that does not compile carries the
// reason, which `validate` returns, so the shared client rejects the whole response (NACK, with
// the resource and field named in error_detail) and the last good config keeps serving.
import { Cluster } from '../../api/gen/envoy/config/cluster/v3/cluster';
import { ClusterLoadAssignment } from '../../api/gen/envoy/config/endpoint/v3/endpoint';
import { Listener } from '../../api/gen/envoy/config/listener/v3/listener';
import { RouteConfiguration } from '../../api/gen/envoy/config/route/v3/route';
// Registers DownstreamTlsContext in the type registry: connect_terminate's transport socket is
// packed as an Any of that type, and decoding it must not depend on another module loading it first.
import '../../api/gen/envoy/extensions/transport_sockets/tls/v3/tls';
import type { ResourceType } from '../../common/xds/types';
import { compileCluster, compileEndpoints, type CompiledCluster, type UpstreamEndpoint } from '../config/clusters';
import { compileListener, type CompiledListener } from '../config/listeners';
import { compileRouteConfiguration, type RouteTable } from '../config/routes';

export const TYPE = {
  cluster: `type.googleapis.com/${Cluster.$type}`,
  endpoint: `type.googleapis.com/${ClusterLoadAssignment.$type}`,
  listener: `type.googleapis.com/${Listener.$type}`,
  route: `type.googleapis.com/${RouteConfiguration.$type}`,
} as const;

/** Short names for logs, metrics and the config dump. */
export const SHORT: Record<string, string> = { [TYPE.cluster]: 'cds', [TYPE.endpoint]: 'eds', [TYPE.listener]: 'lds', [TYPE.route]: 'rds' };

/** A decoded resource with its compiled form, or why it cannot be served. */
export type Compiled<C> =
  | { readonly json: unknown; readonly compiled: C; readonly error?: undefined }
  | { readonly json: unknown; readonly compiled?: undefined; readonly error: string };

interface Codec<M> {
  decode(b: Uint8Array): M;
  toJSON(m: M): unknown;
}

function compiledType<M, C>(typeUrl: string, codec: Codec<M>, compile: (m: M) => C): ResourceType<Compiled<C>> {
  return {
    typeUrl,
    decode(bytes) {
      const m = codec.decode(bytes);
      const json = codec.toJSON(m);
      try {
        return { json, compiled: compile(m) };
      } catch (err) {
        return { json, error: err instanceof Error ? err.message : String(err) };
      }
    },
    validate: (_name, value) => value.error,
  };
}

export const ClusterType = compiledType<Cluster, CompiledCluster>(TYPE.cluster, Cluster, compileCluster);
export const EndpointType = compiledType<ClusterLoadAssignment, UpstreamEndpoint[]>(TYPE.endpoint, ClusterLoadAssignment, compileEndpoints);
export const ListenerType = compiledType<Listener, CompiledListener>(TYPE.listener, Listener, compileListener);
export const RouteType = compiledType<RouteConfiguration, RouteTable>(TYPE.route, RouteConfiguration, compileRouteConfiguration);

/** Make-before-break subscription order: CDS, EDS, LDS, RDS. */
export const WAYPOINT_TYPES = [ClusterType, EndpointType, ListenerType, RouteType] as const;
