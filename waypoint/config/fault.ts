// envoy.filters.http.fault: abort with an HTTP or gRPC status, and/or delay, each for a
// percentage of requests (FractionalPercent). Header-controlled faults are not supported.
import type { HTTPFault } from '../../api/gen/envoy/extensions/filters/http/fault/v3/fault';
import { fraction, millis } from './duration';
import { ConfigError } from './errors';
import { compileHeaderMatcher, type RequestMatch } from './matchers';

export interface FaultPolicy {
  readonly abort?: { readonly httpStatus?: number; readonly grpcStatus?: number; readonly fraction: number };
  readonly delay?: { readonly ms: number; readonly fraction: number };
  /** Only requests matching all of these are faulted. */
  readonly headers: readonly RequestMatch[];
  /** Only requests routed to this cluster (empty: any). */
  readonly upstreamCluster: string;
}

export function compileFault(f: HTTPFault): FaultPolicy {
  let abort: FaultPolicy['abort'];
  if (f.abort) {
    const t = f.abort.errorType;
    if (!t) throw new ConfigError('fault abort has no http_status or grpc_status');
    const frac = fraction(f.abort.percentage, 0);
    if (t.$case === 'httpStatus') {
      if (t.value < 200 || t.value >= 600) throw new ConfigError(`fault abort http_status ${t.value} is not in [200, 600)`);
      abort = { httpStatus: t.value, fraction: frac };
    } else if (t.$case === 'grpcStatus') {
      abort = { grpcStatus: t.value, fraction: frac };
    } else {
      throw new ConfigError('fault abort header_abort is not supported by the nodemesh waypoint');
    }
  }
  let delay: FaultPolicy['delay'];
  if (f.delay) {
    const s = f.delay.faultDelaySecifier;
    if (s?.$case !== 'fixedDelay') throw new ConfigError('fault delay needs fixed_delay (header_delay is not supported)');
    delay = { ms: millis(s.value, 0), fraction: fraction(f.delay.percentage, 0) };
  }
  return { abort, delay, headers: f.headers.map(compileHeaderMatcher), upstreamCluster: f.upstreamCluster };
}
