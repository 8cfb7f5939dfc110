// The outbound routing decision: where a captured connection to dst ip:port goes. Pure — it reads
// the mesh view and asks `pick` to choose among endpoints, nothing else:
//   - a Service VIP: through the Service's waypoint if it has one, else to one healthy endpoint at
//     the port that endpoint listens on;
//   - a workload's own address: through the workload's waypoint if it has one, else straight to it;
//   - anything else is outside the mesh: passthrough (plain TCP to where the app meant to go).
// A waypoint the control plane could not resolve (GatewayAddress without a destination) makes the
// destination unreachable: the connection is refused rather than sent past the waypoint's L7
// policy (fail closed); the reason names the Gateway and why.
// `protocol` says how to reach the chosen peer: HBONE (mTLS tunnel to port 15008) when it is
// enrolled, plain TCP when it is not.
import type { GatewayAddress, Service, Workload } from '../../api/gen/nodemesh/workload/v1/workload';
import { TunnelProtocol } from '../../api/gen/nodemesh/workload/v1/workload';
import { isIPv4 } from 'node:net';
import { canonicalIp, ipFromBytes } from './ip';
import { HBONE_PORT } from '../../common/contracts/ports';

export interface ServiceEndpoint {
  readonly workload: Workload;
  /** The port this endpoint listens on for the service port asked for. */
  readonly targetPort: number;
}

/** What resolve() needs from the state (WorkloadState implements it). */
export interface MeshView {
  serviceByVip(ip: string, network?: string): Service | undefined;
  serviceByHostname(hostname: string): Service | undefined;
  workloadByIp(ip: string, network?: string): Workload | undefined;
  endpoints(service: Service, servicePort: number): ServiceEndpoint[];
}

/** Chooses one of `candidates` (non-empty) for a service key; returns its index. */
export type EndpointPicker = (serviceKey: string, candidates: readonly ServiceEndpoint[]) => number;

export type Protocol = 'hbone' | 'tcp';

/** A waypoint to send the connection through (always HBONE). */
export interface WaypointTarget {
  readonly address: string;
  readonly port: number;
  /** Whether the waypoint serves the destination Service or the destination workload. */
  readonly scope: 'service' | 'workload';
  /** The waypoint workload chosen, when the waypoint was given as a Service host name. */
  readonly workload?: Workload;
}

export type RouteDecision =
  | {
      readonly kind: 'service';
      readonly service: Service;
      readonly servicePort: number;
      /** Absent when the connection goes to the waypoint, which picks the endpoint. */
      readonly endpoint?: Workload;
      /** Endpoint address to dial (or to put in the CONNECT authority). */
      readonly address?: string;
      readonly targetPort: number;
      readonly protocol: Protocol;
      readonly waypoint?: WaypointTarget;
    }
  | {
      readonly kind: 'workload';
      readonly workload: Workload;
      readonly address: string;
      readonly targetPort: number;
      readonly protocol: Protocol;
      readonly waypoint?: WaypointTarget;
    }
  /** In the mesh but nowhere to send it: refuse the connection (reset), say why. */
  | { readonly kind: 'unreachable'; readonly reason: string; readonly service?: Service; readonly workload?: Workload }
  | { readonly kind: 'passthrough' };

export interface Destination {
  readonly ip: string;
  readonly port: number;
  /** The network of the source ('' = the default). */
  readonly network?: string;
}

const protocolOf = (w: Workload): Protocol => (w.tunnelProtocol === TunnelProtocol.TUNNEL_PROTOCOL_HBONE ? 'hbone' : 'tcp');

/** The workload's address in the same IP family as `like`, else its first. */
function addressOf(w: Workload, like: string): string | undefined {
  const v4 = isIPv4(like);
  const all = w.addresses.map(ipFromBytes);
  return all.find((a) => isIPv4(a) === v4) ?? all[0];
}

export function resolve(view: MeshView, dst: Destination, source: Workload | undefined, pick: EndpointPicker): RouteDecision {
  const ip = canonicalIp(dst.ip);
  if (ip === undefined) return { kind: 'passthrough' };
  const network = dst.network ?? '';

  const service = view.serviceByVip(ip, network);
  if (service) {
    const port = service.ports.find((p) => p.servicePort === dst.port);
    if (!port) {
      const known = service.ports.map((p) => p.servicePort).join(', ') || 'none';
      return { kind: 'unreachable', service, reason: `service ${service.hostname} has no port ${dst.port} (its ports: ${known})` };
    }
    if (service.waypoint) {
      const waypoint = waypointTarget(view, service.waypoint, 'service', ip, pick);
      if (typeof waypoint === 'string') return { kind: 'unreachable', service, reason: `service ${service.hostname}: ${waypoint}` };
      if (!isWaypointItself(source, waypoint)) {
        return { kind: 'service', service, servicePort: dst.port, targetPort: dst.port, protocol: 'hbone', waypoint };
      }
    }
    const candidates = view.endpoints(service, dst.port);
    if (candidates.length === 0) {
      return { kind: 'unreachable', service, reason: `service ${service.hostname} has no healthy endpoint for port ${dst.port}` };
    }
    const chosen = candidates[pick(`${service.namespace}/${service.hostname}`, candidates)] ?? candidates[0]!;
    return {
      kind: 'service',
      service,
      servicePort: dst.port,
      endpoint: chosen.workload,
      address: addressOf(chosen.workload, ip),
      targetPort: chosen.targetPort,
      protocol: protocolOf(chosen.workload),
    };
  }

  const workload = view.workloadByIp(ip, network);
  if (workload) {
    if (workload.waypoint) {
      const waypoint = waypointTarget(view, workload.waypoint, 'workload', ip, pick);
      if (typeof waypoint === 'string') return { kind: 'unreachable', workload, reason: `workload ${workload.uid}: ${waypoint}` };
      if (!isWaypointItself(source, waypoint)) {
        return { kind: 'workload', workload, address: ip, targetPort: dst.port, protocol: 'hbone', waypoint };
      }
    }
    return { kind: 'workload', workload, address: ip, targetPort: dst.port, protocol: protocolOf(workload) };
  }

  return { kind: 'passthrough' };
}

function waypointTarget(view: MeshView, gw: GatewayAddress, scope: 'service' | 'workload', like: string, pick: EndpointPicker): WaypointTarget | string {
  const port = gw.hboneMtlsPort || HBONE_PORT;
  const d = gw.destination;
  if (!d) {
    const gateway = gw.gateway ? `Gateway ${gw.gateway}` : 'its waypoint Gateway';
    const why = gw.unresolvedReason || 'the control plane sent no address for it';
    return `its waypoint ${gateway} cannot be used (${why}); the connection is refused rather than bypassing the waypoint's L7 policy`;
  }
  if (d?.$case === 'address') return { address: ipFromBytes(d.value.address), port, scope };
  if (d?.$case === 'hostname') {
    const svc = view.serviceByHostname(d.value.hostname);
    if (!svc) return `its waypoint ${d.value.namespace}/${d.value.hostname} is not known to this node proxy`;
    // Any endpoint of the waypoint Service will do; the HBONE port is the waypoint's.
    const candidates = view.endpoints(svc, svc.ports[0]?.servicePort ?? port);
    if (candidates.length === 0) return `its waypoint ${d.value.hostname} has no healthy instance`;
    const chosen = candidates[pick(`${svc.namespace}/${svc.hostname}`, candidates)] ?? candidates[0]!;
    const address = addressOf(chosen.workload, like);
    if (!address) return `its waypoint instance ${chosen.workload.uid} has no address`;
    return { address, port, scope, workload: chosen.workload };
  }
  return 'its waypoint has no address';
}

/** Traffic the waypoint itself sends on to the service must not loop back into the waypoint. */
function isWaypointItself(source: Workload | undefined, waypoint: WaypointTarget): boolean {
  if (!source) return false;
  if (waypoint.workload && waypoint.workload.uid === source.uid) return true;
  return source.addresses.some((a) => ipFromBytes(a) === waypoint.address);
}

/** Round-robin per service key: each call moves on by one. */
export class RoundRobin {
  private readonly next = new Map<string, number>();

  readonly pick: EndpointPicker = (key, candidates) => {
    const i = (this.next.get(key) ?? 0) % candidates.length;
    this.next.set(key, i + 1);
    return i;
  };
}
