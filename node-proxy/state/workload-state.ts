// The node proxy's view of the mesh, built from the workload API (Address = Workload | Service,
// and Authorization) as the control plane pushes it: indexes for the routing decision and for
// policy, plus events for the things other parts act on — a local enrolled workload appeared, went
// away or changed (capture enrols/unenrols), and "something changed" (re-check open connections).
import type { Address, Authorization, Service, Workload } from '../../api/gen/nodemesh/workload/v1/workload';
import { AuthorizationScope, TunnelProtocol, WorkloadStatus } from '../../api/gen/nodemesh/workload/v1/workload';
import type { DeltaXdsClient } from '../../common/xds/client';
import type { ResourceChange } from '../../common/xds/types';
import { canonicalIp, ipFromBytes, networkKey } from './ip';
import { AddressResource, AuthorizationResource } from './resource-types';
import type { MeshView, ServiceEndpoint } from './resolve';

export type LocalWorkloadEvent =
  | { readonly kind: 'added'; readonly workload: Workload }
  | { readonly kind: 'updated'; readonly workload: Workload; readonly previous: Workload }
  | { readonly kind: 'removed'; readonly workload: Workload };

export interface StateChange {
  readonly addresses: boolean;
  readonly authorizations: boolean;
}

type Change<T> = Pick<ResourceChange<T>, 'updated' | 'removed'>;

/** Resource name of a Service in the workload API ("<namespace>/<hostname>"). */
export function serviceKey(s: Pick<Service, 'namespace' | 'hostname'>): string {
  return `${s.namespace}/${s.hostname}`;
}

export class WorkloadState implements MeshView {
  private readonly workloads = new Map<string, Workload>();
  private readonly workloadsByIp = new Map<string, Workload>();
  private readonly services = new Map<string, Service>();
  private readonly servicesByVip = new Map<string, Service>();
  private readonly servicesByHostname = new Map<string, Service>();
  /** service key -> uids of workloads that name it. */
  private readonly members = new Map<string, Set<string>>();
  private readonly authorizations = new Map<string, Authorization>();
  private readonly localListeners = new Set<(event: LocalWorkloadEvent) => void>();
  private readonly changeListeners = new Set<(change: StateChange) => void>();

  constructor(readonly node: string) {}

  // ---- feeding -------------------------------------------------------------------------------

  /** Follow an xDS client's workload API types. Returns a function that stops following. */
  bindTo(client: DeltaXdsClient): () => void {
    const offA = client.watch(AddressResource, (c) => this.applyAddresses(c));
    const offB = client.watch(AuthorizationResource, (c) => this.applyAuthorizations(c));
    return () => {
      offA();
      offB();
    };
  }

  applyAddresses(change: Change<Address>): void {
    const local: LocalWorkloadEvent[] = [];
    for (const { name } of change.removed) this.removeAddress(name, local);
    for (const { name, value } of change.updated) {
      const previous = this.workloads.get(name);
      this.removeAddress(name, undefined);
      if (value.type?.$case === 'workload') this.addWorkload(value.type.value);
      else if (value.type?.$case === 'service') this.addService(name, value.type.value);
      const now = value.type?.$case === 'workload' ? value.type.value : undefined;
      const was = previous && this.isLocalEnrolled(previous);
      const is = now && this.isLocalEnrolled(now);
      if (is && !was) local.push({ kind: 'added', workload: now });
      else if (was && !is) local.push({ kind: 'removed', workload: previous });
      else if (was && is) local.push({ kind: 'updated', workload: now, previous });
    }
    for (const e of local) for (const l of this.localListeners) l(e);
    if (change.updated.length || change.removed.length) this.emit({ addresses: true, authorizations: false });
  }

  applyAuthorizations(change: Change<Authorization>): void {
    for (const { name } of change.removed) this.authorizations.delete(name);
    for (const { name, value } of change.updated) this.authorizations.set(name, value);
    if (change.updated.length || change.removed.length) this.emit({ addresses: false, authorizations: true });
  }

  private removeAddress(name: string, local: LocalWorkloadEvent[] | undefined): void {
    const w = this.workloads.get(name);
    if (w) {
      this.workloads.delete(name);
      for (const ip of w.addresses) {
        const key = networkKey(w.network, ipFromBytes(ip));
        if (this.workloadsByIp.get(key)?.uid === w.uid) this.workloadsByIp.delete(key);
      }
      for (const svc of Object.keys(w.services)) this.members.get(svc)?.delete(w.uid);
      if (local && this.isLocalEnrolled(w)) local.push({ kind: 'removed', workload: w });
      return;
    }
    const s = this.services.get(name);
    if (s) {
      this.services.delete(name);
      for (const vip of s.addresses) {
        const key = networkKey(vip.network, ipFromBytes(vip.address));
        if (this.servicesByVip.get(key) === s) this.servicesByVip.delete(key);
      }
      if (this.servicesByHostname.get(s.hostname) === s) this.servicesByHostname.delete(s.hostname);
    }
  }

  private addWorkload(w: Workload): void {
    this.workloads.set(w.uid, w);
    for (const ip of w.addresses) this.workloadsByIp.set(networkKey(w.network, ipFromBytes(ip)), w);
    for (const svc of Object.keys(w.services)) {
      let set = this.members.get(svc);
      if (!set) this.members.set(svc, (set = new Set()));
      set.add(w.uid);
    }
  }

  private addService(name: string, s: Service): void {
    this.services.set(name, s);
    for (const vip of s.addresses) this.servicesByVip.set(networkKey(vip.network, ipFromBytes(vip.address)), s);
    this.servicesByHostname.set(s.hostname, s);
  }

  private emit(change: StateChange): void {
    for (const l of this.changeListeners) l(change);
  }

  // ---- events --------------------------------------------------------------------------------

  /** A workload on this node that is enrolled (HBONE) was added, changed or removed. */
  onLocalWorkload(listener: (event: LocalWorkloadEvent) => void): () => void {
    this.localListeners.add(listener);
    return () => this.localListeners.delete(listener);
  }

  /** Anything changed (after the indexes are updated). */
  onChange(listener: (change: StateChange) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  // ---- queries -------------------------------------------------------------------------------

  isLocalEnrolled(w: Workload): boolean {
    return w.node === this.node && w.tunnelProtocol === TunnelProtocol.TUNNEL_PROTOCOL_HBONE;
  }

  /** Enrolled workloads on this node (what capture should have enrolled). */
  localWorkloads(): Workload[] {
    return [...this.workloads.values()].filter((w) => this.isLocalEnrolled(w));
  }

  workload(uid: string): Workload | undefined {
    return this.workloads.get(uid);
  }

  workloadByIp(ip: string, network = ''): Workload | undefined {
    const c = canonicalIp(ip);
    return c === undefined ? undefined : this.workloadsByIp.get(networkKey(network, c));
  }

  service(key: string): Service | undefined {
    return this.services.get(key);
  }

  serviceByVip(ip: string, network = ''): Service | undefined {
    const c = canonicalIp(ip);
    return c === undefined ? undefined : this.servicesByVip.get(networkKey(network, c));
  }

  serviceByHostname(hostname: string): Service | undefined {
    return this.servicesByHostname.get(hostname);
  }

  /** Healthy workloads behind a service port, with the port each one listens on. */
  endpoints(service: Service, servicePort: number): ServiceEndpoint[] {
    const key = serviceKey(service);
    const fallback = service.ports.find((p) => p.servicePort === servicePort)?.targetPort || servicePort;
    const out: ServiceEndpoint[] = [];
    for (const uid of this.members.get(key) ?? []) {
      const w = this.workloads.get(uid);
      if (!w || w.status !== WorkloadStatus.WORKLOAD_STATUS_HEALTHY || w.addresses.length === 0) continue;
      const ports = w.services[key]?.ports ?? [];
      // A workload that lists ports for the service must list this one (named target ports are
      // resolved per workload); one that lists none takes the service's own target port.
      let targetPort: number | undefined = fallback;
      if (ports.length > 0) {
        const p = ports.find((x) => x.servicePort === servicePort);
        targetPort = p ? p.targetPort || servicePort : undefined;
      }
      if (targetPort !== undefined) out.push({ workload: w, targetPort });
    }
    // A stable order, so endpoint choice does not depend on the order of pushes.
    return out.sort((a, b) => (a.workload.uid < b.workload.uid ? -1 : a.workload.uid > b.workload.uid ? 1 : 0));
  }

  /**
   * The Authorizations that apply to a workload: global ones, its namespace's, and the
   * workload-selector ones it lists.
   */
  authorizationsFor(w: Pick<Workload, 'namespace' | 'authorizationPolicies'>): Authorization[] {
    const out: Authorization[] = [];
    for (const a of this.authorizations.values()) {
      if (a.scope === AuthorizationScope.AUTHORIZATION_SCOPE_GLOBAL) out.push(a);
      else if (a.scope === AuthorizationScope.AUTHORIZATION_SCOPE_NAMESPACE && a.namespace === w.namespace) out.push(a);
    }
    for (const name of w.authorizationPolicies) {
      const a = this.authorizations.get(name);
      if (a && a.scope === AuthorizationScope.AUTHORIZATION_SCOPE_WORKLOAD_SELECTOR) out.push(a);
    }
    return out;
  }

  /** Every Authorization held, by "<namespace>/<name>". */
  allAuthorizations(): ReadonlyMap<string, Authorization> {
    return this.authorizations;
  }

  /** Every Workload held, by uid (admin views). */
  allWorkloads(): ReadonlyMap<string, Workload> {
    return this.workloads;
  }

  /** Every Service held, by "<namespace>/<hostname>" (admin views). */
  allServices(): ReadonlyMap<string, Service> {
    return this.services;
  }

  /** Counts for the admin page and metrics. */
  stats(): { workloads: number; services: number; authorizations: number; localEnrolled: number } {
    return {
      workloads: this.workloads.size,
      services: this.services.size,
      authorizations: this.authorizations.size,
      localEnrolled: this.localWorkloads().length,
    };
  }
}
