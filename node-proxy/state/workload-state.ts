// The node proxy's view of the mesh, built from the workload API (Address = Workload | Service,
// Authorization and PeerAuthentication) as the control plane pushes it: indexes for the routing decision and for
// policy, plus events for the things other parts act on — a local enrolled workload appeared, went
// away or changed (capture enrols/unenrols), and "something changed" (re-check open connections).
import type { Address, Authorization, PeerAuthentication, Service, Workload, WorkloadRuntime } from '../../api/gen/nodemesh/workload/v1/workload';
import { AuthorizationScope, PeerAuthenticationScope, TunnelProtocol, WorkloadStatus } from '../../api/gen/nodemesh/workload/v1/workload';
import type { DeltaXdsClient } from '../../common/xds/client';
import type { ResourceChange } from '../../common/xds/types';
import { canonicalIp, ipFromBytes, ipToBytes, networkKey } from './ip';
import type { PeerAuthenticationPolicy } from '../policy/peer-authentication';
import { peerAuthenticationPolicy } from './peer-authentication';
import { AddressResource, AuthorizationResource, PeerAuthenticationResource } from './resource-types';
import type { MeshView, ServiceEndpoint } from './resolve';

export type LocalWorkloadEvent =
  | { readonly kind: 'added'; readonly workload: Workload }
  | { readonly kind: 'updated'; readonly workload: Workload; readonly previous: Workload }
  | { readonly kind: 'removed'; readonly workload: Workload };

export interface StateChange {
  readonly addresses: boolean;
  readonly authorizations: boolean;
  /** PeerAuthentications changed (STRICT/PERMISSIVE): plaintext connections may need re-checking. */
  readonly peerAuthentications?: boolean;
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
  private readonly peerAuthentications = new Map<string, PeerAuthentication>();
  /** peerAuthenticationPolicies(), built on first use after a change. */
  private peerAuthenticationModel: PeerAuthenticationPolicy[] | undefined;
  private readonly localListeners = new Set<(event: LocalWorkloadEvent) => void>();
  private readonly changeListeners = new Set<(change: StateChange) => void>();
  /** "namespace/name" -> where this node found a local workload's netns and cgroup (see setLocalRuntime). */
  private readonly localRuntimes = new Map<string, WorkloadRuntime>();
  /** "namespace/name" -> a local pod's addresses from its CNI result, while the workload API has none (see setLocalAddresses). */
  private readonly localAddresses = new Map<string, Buffer[]>();
  /** Workloads whose `addresses` are the local ones, not the control plane's. */
  private readonly locallyAddressed = new WeakSet<Workload>();

  constructor(readonly node: string) {}

  /**
   * Where this node found a local workload's netns and cgroup when the workload API does not say
   * (a Kubernetes pod: the node proxy finds them itself). Put on the Workload as its `runtime`, now
   * and on every later push, so that every part of the data path reads one place; undefined clears it.
   */
  setLocalRuntime(namespace: string, name: string, runtime: WorkloadRuntime | undefined): void {
    const key = `${namespace}/${name}`;
    const before = this.localRuntimes.get(key);
    if (runtime) this.localRuntimes.set(key, runtime);
    else this.localRuntimes.delete(key);
    for (const w of this.workloads.values()) {
      if (w.namespace !== namespace || w.name !== name || w.node !== this.node) continue;
      const next = runtime ?? (before && w.runtime === before ? undefined : w.runtime);
      if (next !== w.runtime) this.replace(w, { ...w, runtime: next });
    }
  }

  /**
   * Puts `next` where `w` was (by uid and in the address index): a published Workload is never
   * edited in place, so whatever is derived from one object (plan.ts's per-workload caches, a
   * connection's admitted destination) stays true to it.
   */
  private replace(w: Workload, next: Workload): void {
    this.workloads.set(w.uid, next);
    for (const ip of w.addresses) {
      const key = networkKey(w.network, ipFromBytes(ip));
      if (this.workloadsByIp.get(key) === w) this.workloadsByIp.set(key, next);
    }
    if (this.locallyAddressed.has(w)) this.locallyAddressed.add(next);
  }

  /**
   * A local pod's addresses as its CNI result gave them (canonical text), for as long as the
   * workload API publishes it without any: kubelet sets the pod IP only after the CNI ADD, so the
   * control plane publishes the Pod before it has one. Put on the Workload (and in the by-IP index)
   * now and on every later push that still has none; the control plane's addresses win once they
   * come. undefined (or []) clears it.
   */
  setLocalAddresses(namespace: string, name: string, ips: readonly string[] | undefined): void {
    const key = `${namespace}/${name}`;
    const bytes = (ips ?? []).map((ip) => ipToBytes(ip)).filter((b): b is Buffer => b !== undefined);
    const before = this.localAddresses.get(key);
    if (sameAddresses(before ?? [], bytes)) return;
    if (bytes.length) this.localAddresses.set(key, bytes);
    else this.localAddresses.delete(key);
    let changed = false;
    for (const w of this.workloads.values()) {
      if (w.namespace !== namespace || w.name !== name || w.node !== this.node) continue;
      if (w.addresses.length > 0 && !this.locallyAddressed.has(w)) continue; // the control plane's win
      this.unindexAddresses(w);
      const next: Workload = { ...w, addresses: bytes };
      this.workloads.set(w.uid, next);
      if (bytes.length) this.locallyAddressed.add(next);
      for (const ip of next.addresses) this.workloadsByIp.set(networkKey(next.network, ipFromBytes(ip)), next);
      changed = true;
    }
    if (changed) this.emit({ addresses: true, authorizations: false });
  }

  /** Whether a workload's addresses are the local (CNI) ones rather than the control plane's. */
  hasLocalAddresses(w: Workload): boolean {
    return this.locallyAddressed.has(w);
  }

  private unindexAddresses(w: Workload): void {
    for (const ip of w.addresses) {
      const key = networkKey(w.network, ipFromBytes(ip));
      if (this.workloadsByIp.get(key)?.uid === w.uid) this.workloadsByIp.delete(key);
    }
  }

  // ---- feeding -------------------------------------------------------------------------------

  /** Follow an xDS client's workload API types. Returns a function that stops following. */
  bindTo(client: DeltaXdsClient): () => void {
    const offA = client.watch(AddressResource, (c) => this.applyAddresses(c));
    const offB = client.watch(AuthorizationResource, (c) => this.applyAuthorizations(c));
    // Heard only if the client follows the type (PeerAuthenticationResource in its types).
    const offC = client.watch(PeerAuthenticationResource, (c) => this.applyPeerAuthentications(c));
    return () => {
      offA();
      offB();
      offC();
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
    if (change.updated.length || change.removed.length) this.peerAuthenticationModel = undefined;
    for (const e of local) for (const l of this.localListeners) l(e);
    if (change.updated.length || change.removed.length) this.emit({ addresses: true, authorizations: false });
  }

  applyAuthorizations(change: Change<Authorization>): void {
    for (const { name } of change.removed) this.authorizations.delete(name);
    for (const { name, value } of change.updated) this.authorizations.set(name, value);
    if (change.updated.length || change.removed.length) this.emit({ addresses: false, authorizations: true });
  }

  applyPeerAuthentications(change: Change<PeerAuthentication>): void {
    for (const { name } of change.removed) this.peerAuthentications.delete(name);
    for (const { name, value } of change.updated) this.peerAuthentications.set(name, value);
    if (!change.updated.length && !change.removed.length) return;
    this.peerAuthenticationModel = undefined;
    this.emit({ addresses: false, authorizations: false, peerAuthentications: true });
  }

  private removeAddress(name: string, local: LocalWorkloadEvent[] | undefined): void {
    const w = this.workloads.get(name);
    if (w) {
      this.workloads.delete(name);
      this.unindexAddresses(w);
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
    if (w.node === this.node && !w.runtime?.netns) {
      const local = this.localRuntimes.get(`${w.namespace}/${w.name}`);
      if (local) w.runtime = local;
    }
    if (w.node === this.node && w.addresses.length === 0) {
      const local = this.localAddresses.get(`${w.namespace}/${w.name}`);
      if (local) {
        w.addresses = local;
        this.locallyAddressed.add(w);
      }
    } else if (w.node === this.node && w.addresses.length > 0) {
      this.localAddresses.delete(`${w.namespace}/${w.name}`); // the control plane knows them now
    }
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

  /**
   * The PeerAuthentications that can apply to a workload, as node-proxy/policy reads them: the
   * mesh-wide ones, its namespace's, and the workload-selector ones it lists. Feed them to
   * effectivePeerAuthentication(policies, workload, port) (policyContext does).
   */
  peerAuthenticationsFor(w: Pick<Workload, 'uid' | 'namespace' | 'peerAuthenticationPolicies'>): PeerAuthenticationPolicy[] {
    const out: PeerAuthenticationPolicy[] = [];
    for (const p of this.peerAuthentications.values()) {
      if (p.scope === PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_MESH) out.push(peerAuthenticationPolicy(p));
      else if (p.scope === PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_NAMESPACE && p.namespace === w.namespace) out.push(peerAuthenticationPolicy(p));
    }
    for (const name of w.peerAuthenticationPolicies ?? []) {
      const p = this.peerAuthentications.get(name);
      if (p && p.scope === PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_WORKLOAD_SELECTOR) out.push(peerAuthenticationPolicy(p, [w.uid]));
    }
    return out;
  }

  /**
   * Every PeerAuthentication held, as node-proxy/policy's model, with the workloads each selector
   * policy selects (the daemon's `peerAuthentications` option takes this). Cached until the next
   * change; do not modify.
   */
  peerAuthenticationPolicies(): readonly PeerAuthenticationPolicy[] {
    if (this.peerAuthenticationModel) return this.peerAuthenticationModel;
    const selected = new Map<string, string[]>();
    for (const w of this.workloads.values()) {
      for (const name of w.peerAuthenticationPolicies ?? []) {
        const list = selected.get(name);
        if (list) list.push(w.uid);
        else selected.set(name, [w.uid]);
      }
    }
    this.peerAuthenticationModel = [...this.peerAuthentications].map(([name, p]) => peerAuthenticationPolicy(p, selected.get(name) ?? []));
    return this.peerAuthenticationModel;
  }

  /** Every PeerAuthentication held, by "<namespace>/<name>" (admin views). */
  allPeerAuthentications(): ReadonlyMap<string, PeerAuthentication> {
    return this.peerAuthentications;
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
  stats(): { workloads: number; services: number; authorizations: number; peerAuthentications: number; localEnrolled: number } {
    return {
      workloads: this.workloads.size,
      services: this.services.size,
      authorizations: this.authorizations.size,
      peerAuthentications: this.peerAuthentications.size,
      localEnrolled: this.localWorkloads().length,
    };
  }
}

function sameAddresses(a: readonly Buffer[], b: readonly Buffer[]): boolean {
  return a.length === b.length && a.every((x, i) => Buffer.compare(x, b[i]!) === 0);
}
