// Which waypoints a destination workload is bound to, and who may therefore reach it. A workload
// is bound to a waypoint when it uses one itself (Workload.waypoint) or when a Service that
// selects it does (Service.waypoint). Traffic to a bound workload must come from (one of) its
// waypoints, so the waypoint's L7 policy cannot be bypassed by dialling the pod directly: the
// node proxy admits only the waypoint's SPIFFE identity (evaluate() refuses everything else).
// Pure: reads the mesh view, nothing else.
import type { GatewayAddress, Service, Workload } from '../../api/gen/nodemesh/workload/v1/workload';
import { DEFAULT_TRUST_DOMAIN, formatSpiffeId, identity } from '../../common/identity/spiffe';
import { ipFromBytes } from '../state/ip';
import type { ServiceEndpoint } from '../state/resolve';
import { HBONE_PORT } from '../../common/contracts/ports';

/** What the bindings are computed from (WorkloadState implements it). */
export interface WaypointView {
  service(key: string): Service | undefined;
  serviceByHostname(hostname: string): Service | undefined;
  workloadByIp(ip: string, network?: string): Workload | undefined;
  endpoints(service: Service, servicePort: number): ServiceEndpoint[];
}

export interface WaypointBinding {
  /** The waypoint Gateway ("<namespace>/<name>"), or its address when the control plane gave no name. */
  readonly gateway: string;
  /** Why the destination is bound: "its own nodemesh.io/use-waypoint" or "Service <hostname>". */
  readonly via: string;
  /** The SPIFFE IDs the waypoint presents; empty when it is unresolved (nobody may connect). */
  readonly identities: readonly string[];
  /** Set when the control plane could not resolve the waypoint. */
  readonly unresolvedReason?: string;
}

const spiffeOf = (w: Pick<Workload, 'namespace' | 'serviceAccount' | 'trustDomain'>, trustDomain: string): string =>
  formatSpiffeId(identity(w.namespace, w.serviceAccount || 'default', w.trustDomain || trustDomain));

/**
 * The identities a waypoint presents: those of its instances (the Workload at its address, or
 * the endpoints of its Service); for an address that is no known workload, the identity a
 * waypoint has by convention — service account = Gateway name, in the Gateway's namespace.
 */
export function waypointIdentities(view: WaypointView, gw: GatewayAddress, trustDomain = DEFAULT_TRUST_DOMAIN): string[] {
  const d = gw.destination;
  const out = new Set<string>();
  if (d?.$case === 'address') {
    const w = view.workloadByIp(ipFromBytes(d.value.address), d.value.network);
    if (w) out.add(spiffeOf(w, trustDomain));
  } else if (d?.$case === 'hostname') {
    const svc = view.serviceByHostname(d.value.hostname);
    if (svc) {
      for (const p of svc.ports.length > 0 ? svc.ports : [{ servicePort: gw.hboneMtlsPort || HBONE_PORT }]) {
        for (const e of view.endpoints(svc, p.servicePort)) out.add(spiffeOf(e.workload, trustDomain));
      }
    }
  } else {
    return [];
  }
  if (out.size === 0) {
    const [ns, name] = gw.gateway.split('/');
    if (ns && name) out.add(formatSpiffeId(identity(ns, name, trustDomain)));
  }
  return [...out].sort();
}

function gatewayName(gw: GatewayAddress): string {
  if (gw.gateway) return gw.gateway;
  const d = gw.destination;
  if (d?.$case === 'address') return ipFromBytes(d.value.address);
  if (d?.$case === 'hostname') return `${d.value.namespace}/${d.value.hostname}`;
  return '(unnamed)';
}

function bindingOf(view: WaypointView, gw: GatewayAddress, via: string, trustDomain: string): WaypointBinding {
  if (!gw.destination) {
    return { gateway: gatewayName(gw), via, identities: [], unresolvedReason: gw.unresolvedReason || 'the control plane sent no address for it' };
  }
  return { gateway: gatewayName(gw), via, identities: waypointIdentities(view, gw, trustDomain) };
}

/** Every waypoint the workload is bound to: its own, then those of the Services selecting it. */
export function waypointBindings(view: WaypointView, destination: Workload, trustDomain = DEFAULT_TRUST_DOMAIN): WaypointBinding[] {
  const td = destination.trustDomain || trustDomain;
  const out: WaypointBinding[] = [];
  if (destination.waypoint) out.push(bindingOf(view, destination.waypoint, 'its own nodemesh.io/use-waypoint', td));
  for (const key of Object.keys(destination.services).sort()) {
    const svc = view.service(key);
    if (svc?.waypoint) out.push(bindingOf(view, svc.waypoint, `Service ${svc.hostname}`, td));
  }
  return out;
}

/** Whether `identity` is one a waypoint of these bindings presents. */
export function fromBoundWaypoint(bindings: readonly WaypointBinding[], sourceIdentity: string | undefined): boolean {
  if (!sourceIdentity) return false;
  return bindings.some((b) => b.identities.includes(sourceIdentity));
}
