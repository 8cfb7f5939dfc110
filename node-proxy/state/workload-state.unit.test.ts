import { describe, expect, it } from 'vitest';
import {
  Address,
  Authorization,
  AuthorizationScope,
  MtlsMode,
  PeerAuthentication,
  PeerAuthenticationScope,
  TunnelProtocol,
  WorkloadRuntime,
  WorkloadStatus,
} from '../../api/gen/nodemesh/workload/v1/workload';
import { ipBytes } from '../../common/ip';
import { evaluate, policyContext } from '../policy';
import { resolve, RoundRobin, type RouteDecision } from './resolve';
import { peerAuthenticationProblem } from './resource-types';
import { addressesIn, putAddresses } from './testing/addresses';
import { WorkloadState, type LocalWorkloadEvent, type StateChange } from './workload-state';

const { workload, service } = addressesIn('default');
const put = putAddresses;

const WEB = 'default/web.default.svc.cluster.local';
const webPorts = (target = 8080) => ({ [WEB]: { ports: [{ servicePort: 80, targetPort: target }] } });

function remove(state: WorkloadState, ...names: string[]): void {
  state.applyAddresses({ updated: [], removed: names.map((name) => ({ name, previous: Address.fromPartial({}) })) });
}

function mesh(): WorkloadState {
  const state = new WorkloadState('node-1');
  put(
    state,
    service('web', '10.96.0.12'),
    workload('web-1', '10.200.1.5', { services: webPorts() }),
    workload('web-2', '10.200.2.5', { services: webPorts(9090), node: 'node-2' }),
    workload('client', '10.200.1.9'),
  );
  return state;
}

const endpointName = (d: RouteDecision) => (d.kind === 'service' ? d.endpoint?.name : d.kind);

describe('WorkloadState indexes', () => {
  it('finds workloads by uid and IP (IPv4-mapped folded), services by VIP and hostname', () => {
    const s = mesh();
    expect(s.workload('Workload/default/web-1')?.name).toBe('web-1');
    expect(s.workloadByIp('10.200.1.5')?.name).toBe('web-1');
    expect(s.workloadByIp('::ffff:10.200.1.5')?.name).toBe('web-1');
    expect(s.workloadByIp('10.200.1.99')).toBeUndefined();
    expect(s.serviceByVip('10.96.0.12')?.name).toBe('web');
    expect(s.serviceByHostname('web.default.svc.cluster.local')?.name).toBe('web');
    expect(s.stats()).toEqual({ workloads: 3, services: 1, authorizations: 0, peerAuthentications: 0, localEnrolled: 2 });
  });

  it('lists healthy endpoints with each one’s target port, and drops removed or unhealthy ones', () => {
    const s = mesh();
    const web = s.serviceByVip('10.96.0.12')!;
    expect(s.endpoints(web, 80).map((e) => [e.workload.name, e.targetPort])).toEqual([
      ['web-1', 8080],
      ['web-2', 9090],
    ]);
    put(s, workload('web-2', '10.200.2.5', { services: webPorts(9090), node: 'node-2', status: WorkloadStatus.WORKLOAD_STATUS_UNHEALTHY }));
    expect(s.endpoints(web, 80).map((e) => e.workload.name)).toEqual(['web-1']);
    remove(s, 'Workload/default/web-1');
    expect(s.endpoints(web, 80)).toEqual([]);
    expect(s.workloadByIp('10.200.1.5')).toBeUndefined();
    // A workload whose address changes is found at the new address only.
    put(s, workload('client', '10.200.1.10'));
    expect(s.workloadByIp('10.200.1.9')).toBeUndefined();
    expect(s.workloadByIp('10.200.1.10')?.name).toBe('client');
  });

  it('announces local enrolled workloads being added, updated and removed', () => {
    const s = new WorkloadState('node-1');
    const events: LocalWorkloadEvent[] = [];
    s.onLocalWorkload((e) => events.push(e));
    put(
      s,
      workload('a', '10.200.1.5'),
      workload('b', '10.200.2.5', { node: 'node-2' }),
      workload('c', '10.200.1.6', { tunnelProtocol: TunnelProtocol.TUNNEL_PROTOCOL_NONE }),
    );
    expect(events.map((e) => `${e.kind} ${e.workload.name}`)).toEqual(['added a']);
    events.length = 0;
    put(s, workload('a', '10.200.1.7'));
    expect(events.map((e) => `${e.kind} ${e.workload.name}`)).toEqual(['updated a']);
    expect(events[0]!.kind === 'updated' && [...events[0]!.previous.addresses[0]!]).toEqual([10, 200, 1, 5]);
    events.length = 0;
    // Opting out (dataplane-mode none -> plain TCP) unenrols; opting in enrols.
    put(s, workload('a', '10.200.1.7', { tunnelProtocol: TunnelProtocol.TUNNEL_PROTOCOL_NONE }), workload('c', '10.200.1.6'));
    expect(events.map((e) => `${e.kind} ${e.workload.name}`)).toEqual(['removed a', 'added c']);
    events.length = 0;
    remove(s, 'Workload/default/c', 'Workload/default/b');
    expect(events.map((e) => `${e.kind} ${e.workload.name}`)).toEqual(['removed c']);
    expect(s.localWorkloads()).toEqual([]);
  });

  it("takes a local pod's CNI addresses while the workload API publishes it without any; the control plane's win once they come", () => {
    const s = new WorkloadState('node-1');
    const changes: StateChange[] = [];
    s.onChange((c) => changes.push(c));
    const pending = (node = 'node-1') =>
      workload('pod-a', '10.200.1.5', { addresses: [], node, podUid: '5f0c6e2a-1b2c-4d3e-8f90-0123456789ab', workloadType: 'Pod' });
    put(s, pending(), service('web', '10.96.0.12'), workload('client', '10.200.1.9'));
    // Address-less: in no index, no endpoint, not routable.
    expect(s.workloadByIp('10.200.1.7')).toBeUndefined();
    expect(resolve(s, { ip: '10.200.1.7', port: 80 }, undefined, new RoundRobin().pick).kind).toBe('passthrough');
    changes.length = 0;
    const published = s.workload('Workload/default/pod-a')!;
    s.setLocalAddresses('default', 'pod-a', ['10.200.1.7']);
    expect(s.workloadByIp('10.200.1.7')?.name).toBe('pod-a');
    expect(s.hasLocalAddresses(s.workload('Workload/default/pod-a')!)).toBe(true);
    // a new object in its place: the one handed out before is never edited
    expect(s.workload('Workload/default/pod-a')).not.toBe(published);
    expect(s.workloadByIp('10.200.1.7')).toBe(s.workload('Workload/default/pod-a'));
    expect(published.addresses).toEqual([]);
    expect(changes).toEqual([{ addresses: true, authorizations: false }]);
    s.setLocalAddresses('default', 'pod-a', ['10.200.1.7']); // unchanged: no event
    expect(changes).toHaveLength(1);
    // A push that still has none keeps the local ones.
    put(s, pending());
    expect(s.workloadByIp('10.200.1.7')?.name).toBe('pod-a');
    // The control plane's address wins (and the local one is forgotten).
    put(s, workload('pod-a', '10.200.1.8', { podUid: '5f0c6e2a-1b2c-4d3e-8f90-0123456789ab', workloadType: 'Pod' }));
    expect(s.workloadByIp('10.200.1.7')).toBeUndefined();
    expect(s.workloadByIp('10.200.1.8')?.name).toBe('pod-a');
    expect(s.hasLocalAddresses(s.workload('Workload/default/pod-a')!)).toBe(false);
    s.setLocalAddresses('default', 'pod-a', ['10.200.1.7']);
    expect(s.workloadByIp('10.200.1.7')).toBeUndefined();
    // Cleared: the pod is address-less again until a new sandbox.
    put(s, pending());
    s.setLocalAddresses('default', 'pod-a', ['10.200.1.7']);
    s.setLocalAddresses('default', 'pod-a', undefined);
    expect(s.workloadByIp('10.200.1.7')).toBeUndefined();
    expect(s.workload('Workload/default/pod-a')!.addresses).toEqual([]);
    // Only this node's pods.
    put(s, pending('node-2'));
    s.setLocalAddresses('default', 'pod-a', ['10.200.1.7']);
    expect(s.workloadByIp('10.200.1.7')).toBeUndefined();
  });

  it("puts a local pod's netns and cgroup on a new Workload object, never on the one handed out before", () => {
    const s = new WorkloadState('node-1');
    put(s, workload('pod-a', '10.200.1.5', { workloadType: 'Pod' }), workload('pod-b', '10.200.2.5', { node: 'node-2', workloadType: 'Pod' }));
    const published = s.workload('Workload/default/pod-a')!;
    const runtime = WorkloadRuntime.fromPartial({ netns: '/var/run/netns/cni-1', cgroup: 'kubepods.slice/pod-a.slice' });
    s.setLocalRuntime('default', 'pod-a', runtime);
    const now = s.workload('Workload/default/pod-a')!;
    expect(now).not.toBe(published);
    expect(now.runtime).toBe(runtime);
    expect(published.runtime?.netns ?? '').toBe('');
    expect(s.workloadByIp('10.200.1.5')).toBe(now);
    // a later push without a runtime gets it too; clearing takes it off (again on a new object)
    put(s, workload('pod-a', '10.200.1.5', { workloadType: 'Pod' }));
    expect(s.workload('Workload/default/pod-a')!.runtime).toBe(runtime);
    const withRuntime = s.workload('Workload/default/pod-a')!;
    s.setLocalRuntime('default', 'pod-a', undefined);
    expect(s.workload('Workload/default/pod-a')!.runtime).toBeUndefined();
    expect(withRuntime.runtime).toBe(runtime);
    // only this node's pods
    s.setLocalRuntime('default', 'pod-b', runtime);
    expect(s.workload('Workload/default/pod-b')!.runtime?.netns ?? '').toBe('');
  });

  it('selects authorizations by scope: global, namespace, and the ones a workload lists', () => {
    const s = new WorkloadState('node-1');
    const authz = (name: string, namespace: string, scope: AuthorizationScope) => {
      const value = Authorization.fromPartial({ name, namespace, scope });
      return { name: `${namespace}/${name}`, version: 'v', value };
    };
    s.applyAuthorizations({
      updated: [
        authz('mesh-wide', 'nodemesh-system', AuthorizationScope.AUTHORIZATION_SCOPE_GLOBAL),
        authz('ns-default', 'default', AuthorizationScope.AUTHORIZATION_SCOPE_NAMESPACE),
        authz('ns-other', 'other', AuthorizationScope.AUTHORIZATION_SCOPE_NAMESPACE),
        authz('web-only', 'default', AuthorizationScope.AUTHORIZATION_SCOPE_WORKLOAD_SELECTOR),
        authz('db-only', 'default', AuthorizationScope.AUTHORIZATION_SCOPE_WORKLOAD_SELECTOR),
      ],
      removed: [],
    });
    const names = (w: { namespace: string; authorizationPolicies: string[] }) =>
      s
        .authorizationsFor(w)
        .map((a) => a.name)
        .sort();
    expect(names({ namespace: 'default', authorizationPolicies: ['default/web-only'] })).toEqual(['mesh-wide', 'ns-default', 'web-only']);
    expect(names({ namespace: 'other', authorizationPolicies: [] })).toEqual(['mesh-wide', 'ns-other']);
    s.applyAuthorizations({ updated: [], removed: [{ name: 'nodemesh-system/mesh-wide', previous: Authorization.fromPartial({}) }] });
    expect(names({ namespace: 'other', authorizationPolicies: [] })).toEqual(['ns-other']);
  });
});

describe('PeerAuthentication in the state', () => {
  const pa = (name: string, namespace: string, scope: PeerAuthenticationScope, mode: MtlsMode, portLevelMtls: Record<number, MtlsMode> = {}) => {
    const value = PeerAuthentication.fromPartial({ name, namespace, scope, mode, portLevelMtls });
    return { name: `${namespace}/${name}`, version: 'v', value };
  };
  const plaintext = { sourceIp: '10.200.9.9', destinationIp: '10.200.1.5', destinationPort: 8080 };
  const mtls = { ...plaintext, sourceIdentity: 'spiffe://cluster.local/ns/default/sa/client' };

  it('selects mesh, namespace and listed selector policies, and policyContext applies Istio precedence from them', () => {
    const s = mesh();
    put(s, workload('db', '10.200.1.7', { peerAuthenticationPolicies: ['default/db'] }));
    const changes: StateChange[] = [];
    s.onChange((c) => changes.push(c));
    s.applyPeerAuthentications({
      updated: [
        pa('mesh', 'nodemesh-system', PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_MESH, MtlsMode.MTLS_MODE_PERMISSIVE),
        pa('strict', 'default', PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_NAMESPACE, MtlsMode.MTLS_MODE_STRICT),
        pa('other', 'other', PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_NAMESPACE, MtlsMode.MTLS_MODE_PERMISSIVE),
        pa('db', 'default', PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_WORKLOAD_SELECTOR, MtlsMode.MTLS_MODE_UNSET, {
          9000: MtlsMode.MTLS_MODE_PERMISSIVE,
        }),
      ],
      removed: [],
    });
    expect(changes).toEqual([{ addresses: false, authorizations: false, peerAuthentications: true }]);
    const web = s.workload('Workload/default/web-1')!;
    const db = s.workload('Workload/default/db')!;
    expect(
      s
        .peerAuthenticationsFor(web)
        .map((p) => `${p.namespace}/${p.name}`)
        .sort(),
    ).toEqual(['default/strict', 'nodemesh-system/mesh']);
    expect(s.peerAuthenticationsFor(db).find((p) => p.name === 'db')).toEqual({
      name: 'db',
      namespace: 'default',
      scope: 'workload',
      workloads: ['Workload/default/db'],
      mode: 'UNSET',
      portLevel: { 9000: 'PERMISSIVE' },
    });
    expect(s.peerAuthenticationPolicies().find((p) => p.name === 'db')?.workloads).toEqual(['Workload/default/db']);

    // Namespace STRICT refuses plaintext and admits mTLS; the db's port-level PERMISSIVE wins on 9000.
    expect(policyContext(s, web, 8080).peerAuthentication).toEqual({ mode: 'STRICT', policy: 'default/strict' });
    const refused = evaluate(plaintext, policyContext(s, web, 8080));
    expect(refused).toMatchObject({ allowed: false, policy: 'default/strict' });
    expect(refused.reason).toMatch(/requires mutual TLS \(STRICT\)/);
    expect(evaluate(mtls, policyContext(s, web, 8080)).allowed).toBe(true);
    expect(evaluate({ ...plaintext, destinationIp: '10.200.1.7', destinationPort: 9000 }, policyContext(s, db, 9000))).toMatchObject({ allowed: true });
    expect(evaluate({ ...plaintext, destinationIp: '10.200.1.7', destinationPort: 5432 }, policyContext(s, db, 5432)).allowed).toBe(false);

    // The namespace goes PERMISSIVE: plaintext is admitted.
    s.applyPeerAuthentications({
      updated: [pa('strict', 'default', PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_NAMESPACE, MtlsMode.MTLS_MODE_PERMISSIVE)],
      removed: [],
    });
    expect(evaluate(plaintext, policyContext(s, web, 8080))).toMatchObject({ allowed: true });
    // Removed: the mesh-wide PERMISSIVE applies; the cached model follows workload changes too.
    s.applyPeerAuthentications({ updated: [], removed: [{ name: 'default/strict', previous: PeerAuthentication.fromPartial({}) }] });
    expect(policyContext(s, web, 8080).peerAuthentication).toEqual({ mode: 'PERMISSIVE', policy: 'nodemesh-system/mesh' });
    put(s, workload('web-1', '10.200.1.5', { services: webPorts(), peerAuthenticationPolicies: ['default/db'] }));
    expect(s.peerAuthenticationPolicies().find((p) => p.name === 'db')?.workloads).toEqual(['Workload/default/db', 'Workload/default/web-1']);
    expect(s.stats().peerAuthentications).toBe(3);
  });

  it('refuses (NACKs) PeerAuthentications it could not enforce', () => {
    const { value } = pa('p', 'default', PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_NAMESPACE, MtlsMode.MTLS_MODE_STRICT);
    expect(peerAuthenticationProblem('default/p', value)).toBeUndefined();
    expect(peerAuthenticationProblem('default/q', value)).toMatch(/not "<namespace>\/<name>"/);
    expect(peerAuthenticationProblem('default/p', { ...value, mode: 7 as MtlsMode })).toMatch(/unknown mTLS mode 7/);
    expect(peerAuthenticationProblem('default/p', { ...value, portLevelMtls: { 70000: MtlsMode.MTLS_MODE_STRICT } })).toMatch(/port 70000/);
  });
});

describe('resolve', () => {
  it('sends a VIP to healthy endpoints in turn, each at its own target port, over HBONE', () => {
    const s = mesh();
    const rr = new RoundRobin();
    const client = s.workloadByIp('10.200.1.9');
    const picks = [1, 2, 3, 4].map(() => resolve(s, { ip: '10.96.0.12', port: 80 }, client, rr.pick));
    expect(picks.map(endpointName)).toEqual(['web-1', 'web-2', 'web-1', 'web-2']);
    expect(picks[0]).toMatchObject({ kind: 'service', address: '10.200.1.5', targetPort: 8080, protocol: 'hbone', servicePort: 80 });
    expect(picks[1]).toMatchObject({ address: '10.200.2.5', targetPort: 9090 });
  });

  it('uses plain TCP to an endpoint that is not enrolled', () => {
    const s = mesh();
    put(s, workload('web-2', '10.200.2.5', { services: webPorts(9090), tunnelProtocol: TunnelProtocol.TUNNEL_PROTOCOL_NONE }));
    remove(s, 'Workload/default/web-1');
    expect(resolve(s, { ip: '10.96.0.12', port: 80 }, undefined, new RoundRobin().pick)).toMatchObject({ protocol: 'tcp', address: '10.200.2.5' });
  });

  it('refuses a VIP port the service does not have, and a service without healthy endpoints', () => {
    const s = mesh();
    const rr = new RoundRobin().pick;
    expect(resolve(s, { ip: '10.96.0.12', port: 81 }, undefined, rr)).toMatchObject({
      kind: 'unreachable',
      reason: 'service web.default.svc.cluster.local has no port 81 (its ports: 80)',
    });
    remove(s, 'Workload/default/web-1', 'Workload/default/web-2');
    expect(resolve(s, { ip: '10.96.0.12', port: 80 }, undefined, rr)).toMatchObject({
      kind: 'unreachable',
      reason: expect.stringMatching(/no healthy endpoint for port 80/),
    });
  });

  it('goes straight to a workload addressed by its own IP, and passes through what is outside the mesh', () => {
    const s = mesh();
    const rr = new RoundRobin().pick;
    expect(resolve(s, { ip: '10.200.2.5', port: 9090 }, undefined, rr)).toMatchObject({
      kind: 'workload',
      address: '10.200.2.5',
      targetPort: 9090,
      protocol: 'hbone',
    });
    expect(resolve(s, { ip: '93.184.216.34', port: 443 }, undefined, rr)).toEqual({ kind: 'passthrough' });
    expect(resolve(s, { ip: 'not-an-ip', port: 1 }, undefined, rr)).toEqual({ kind: 'passthrough' });
  });

  it('sends service traffic through its waypoint, but not the waypoint’s own traffic', () => {
    const s = mesh();
    const rr = new RoundRobin().pick;
    put(
      s,
      service('wp', '10.96.0.50', { ports: [{ servicePort: 15008, targetPort: 15008 }] }),
      workload('wp-1', '10.200.1.50', { services: { 'default/wp.default.svc.cluster.local': { ports: [{ servicePort: 15008, targetPort: 15008 }] } } }),
      service('web', '10.96.0.12', {
        waypoint: { destination: { $case: 'hostname', value: { namespace: 'default', hostname: 'wp.default.svc.cluster.local' } }, hboneMtlsPort: 15008 },
      }),
    );
    const viaWaypoint = resolve(s, { ip: '10.96.0.12', port: 80 }, s.workloadByIp('10.200.1.9'), rr);
    expect(viaWaypoint).toMatchObject({
      kind: 'service',
      protocol: 'hbone',
      targetPort: 80,
      waypoint: { address: '10.200.1.50', port: 15008, scope: 'service' },
    });
    expect(viaWaypoint.kind === 'service' && viaWaypoint.endpoint).toBeUndefined();
    const fromWaypoint = resolve(s, { ip: '10.96.0.12', port: 80 }, s.workloadByIp('10.200.1.50'), rr);
    expect(fromWaypoint).toMatchObject({ kind: 'service', endpoint: { name: expect.stringMatching(/^web-/) } });
    expect(fromWaypoint.kind === 'service' && fromWaypoint.waypoint).toBeUndefined();
    // A waypoint with no instance: refused, not silently bypassed.
    remove(s, 'Workload/default/wp-1');
    expect(resolve(s, { ip: '10.96.0.12', port: 80 }, undefined, rr)).toMatchObject({
      kind: 'unreachable',
      reason: expect.stringMatching(/waypoint wp.default.svc.cluster.local has no healthy instance/),
    });
  });

  it('refuses traffic to a service or workload whose waypoint is unresolved (fail closed), naming the Gateway', () => {
    const s = mesh();
    const rr = new RoundRobin().pick;
    const unresolved = { gateway: 'default/missing', unresolvedReason: 'no Gateway default/missing' };
    put(s, service('web', '10.96.0.12', { waypoint: unresolved }), workload('db', '10.200.1.77', { waypoint: unresolved }));
    const viaService = resolve(s, { ip: '10.96.0.12', port: 80 }, s.workloadByIp('10.200.1.9'), rr);
    expect(viaService).toMatchObject({ kind: 'unreachable', service: { name: 'web' } });
    expect(viaService.kind === 'unreachable' && viaService.reason).toBe(
      "service web.default.svc.cluster.local: its waypoint Gateway default/missing cannot be used (no Gateway default/missing); the connection is refused rather than bypassing the waypoint's L7 policy",
    );
    const direct = resolve(s, { ip: '10.200.1.77', port: 5432 }, undefined, rr);
    expect(direct).toMatchObject({
      kind: 'unreachable',
      workload: { name: 'db' },
      reason: expect.stringMatching(/^workload Workload\/default\/db: its waypoint Gateway default\/missing cannot be used/),
    });
    // The destination's own node proxy does not count an unresolved waypoint as one: an ALLOW
    // rule that needs L7 cannot match there.
    const db = s.workload('Workload/default/db')!;
    expect(policyContext(s, db, 5432).hasWaypoint).toBe(false);
    const resolved = workload('db', '10.200.1.77', {
      waypoint: { destination: { $case: 'address', value: { network: '', address: ipBytes('10.200.1.60') } }, hboneMtlsPort: 15008 },
    });
    put(s, resolved);
    expect(policyContext(s, s.workload('Workload/default/db')!, 5432).hasWaypoint).toBe(true);
  });

  it('sends workload traffic through a workload waypoint given by address', () => {
    const s = mesh();
    put(
      s,
      workload('db', '10.200.1.77', {
        waypoint: { destination: { $case: 'address', value: { network: '', address: ipBytes('10.200.1.60') } }, hboneMtlsPort: 15008 },
      }),
    );
    expect(resolve(s, { ip: '10.200.1.77', port: 5432 }, undefined, new RoundRobin().pick)).toMatchObject({
      kind: 'workload',
      targetPort: 5432,
      waypoint: { address: '10.200.1.60', port: 15008, scope: 'workload' },
    });
  });
});
