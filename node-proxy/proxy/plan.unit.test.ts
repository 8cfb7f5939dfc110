// The connection plan without sockets: where a captured connection goes and under which identity,
// and the destination's policy applied identically to HBONE, plaintext and same-node connections.
import { describe, expect, it } from 'vitest';
import {
  Authorization,
  AuthorizationAction,
  AuthorizationScope,
  MtlsMode,
  PeerAuthentication,
  PeerAuthenticationScope,
  TunnelProtocol,
  Workload,
} from '../../api/gen/nodemesh/workload/v1/workload';
import { RoundRobin } from '../state/resolve';
import { addressesIn } from '../state/testing/addresses';
import { WorkloadState } from '../state/workload-state';
import { admit, planOutbound, sourceIp, spiffeOf, type PlanView } from './plan';

const TD = 'cluster.local';
const id = (sa: string): string => `spiffe://${TD}/ns/default/sa/${sa}`;

const { workload, service } = addressesIn('default');

function view(served: readonly string[] = ['client', 'local-web']): { view: PlanView; state: WorkloadState } {
  const state = new WorkloadState('node-1');
  const web = { 'default/web.default.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 8080 }] } };
  const addresses = [
    service('web', '10.96.0.12'),
    workload('client', '10.200.1.9'),
    workload('local-web', '10.200.1.5', { services: web }),
    workload('remote-web', '10.200.2.5', { node: 'node-2' }),
    workload('plain', '10.200.2.7', { node: 'node-2', tunnelProtocol: TunnelProtocol.TUNNEL_PROTOCOL_NONE }),
  ];
  state.applyAddresses({
    updated: addresses.map((value) => ({
      name: value.type?.$case === 'workload' ? value.type.value.uid : 'default/web.default.svc.cluster.local',
      version: 'v',
      value,
    })),
    removed: [],
  });
  return {
    state,
    view: {
      node: 'node-1',
      trustDomain: TD,
      state,
      servesLocally: (w) => served.includes(w.name),
      peerAuthentications: () => state.peerAuthenticationPolicies(),
    },
  };
}

const client = { address: '10.200.1.9', port: 40000 };
const src = (v: PlanView): Workload => v.state.workloadByIp('10.200.1.9')!;

describe('planOutbound', () => {
  it('sends a workload on another node through HBONE on 15008 with both identities', () => {
    const { view: v } = view();
    const p = planOutbound(v, src(v), client, { address: '10.200.2.5', port: 8080 }, new RoundRobin().pick);
    expect(p).toMatchObject({
      kind: 'tunnel',
      hbone: { address: '10.200.2.5', port: 15008 },
      authority: { address: '10.200.2.5', port: 8080 },
      expected: id('remote-web'),
    });
    if (p.kind !== 'tunnel') throw new Error('not a tunnel');
    expect(p.record).toMatchObject({ reporter: 'source', mtls: true, source: { identity: id('client'), address: '10.200.1.9', port: 40000 } });
    expect(p.record.sameNode).toBeUndefined();
  });

  it('hands a workload served on this node to the inbound side (same-node), through a Service VIP too', () => {
    const { view: v } = view();
    const p = planOutbound(v, src(v), client, { address: '10.96.0.12', port: 80 }, new RoundRobin().pick);
    expect(p).toMatchObject({
      kind: 'local',
      target: { address: '10.200.1.5', port: 8080 },
      record: { sameNode: true, service: { hostname: 'web.default.svc.cluster.local' } },
    });
  });

  it('tunnels to a local workload this proxy does not serve (no HBONE listener yet)', () => {
    const { view: v } = view(['client']);
    expect(planOutbound(v, src(v), client, { address: '10.200.1.5', port: 8080 }, new RoundRobin().pick).kind).toBe('tunnel');
  });

  it('goes direct outside the mesh, to a workload that is not enrolled, and for a source no longer known', () => {
    const { view: v } = view();
    const pick = new RoundRobin().pick;
    expect(planOutbound(v, src(v), client, { address: '192.0.2.1', port: 443 }, pick)).toEqual({ kind: 'direct', target: { address: '192.0.2.1', port: 443 } });
    expect(planOutbound(v, src(v), client, { address: '10.200.2.7', port: 5432 }, pick)).toEqual({
      kind: 'direct',
      target: { address: '10.200.2.7', port: 5432 },
    });
    expect(planOutbound(v, undefined, client, { address: '10.200.2.5', port: 8080 }, pick)).toEqual({
      kind: 'direct',
      target: { address: '10.200.2.5', port: 8080 },
    });
  });

  it('refuses a Service port that does not exist', () => {
    const { view: v } = view();
    expect(planOutbound(v, src(v), client, { address: '10.96.0.12', port: 81 }, new RoundRobin().pick).kind).toBe('refuse');
  });
});

describe('admit (the destination policy, one step for HBONE, plaintext and same-node)', () => {
  const denyClient = (state: WorkloadState): void =>
    state.applyAuthorizations({
      updated: [
        {
          name: 'default/deny-client',
          version: 'v',
          value: Authorization.fromPartial({
            name: 'deny-client',
            namespace: 'default',
            scope: AuthorizationScope.AUTHORIZATION_SCOPE_NAMESPACE,
            action: AuthorizationAction.AUTHORIZATION_ACTION_DENY,
            rules: [{ clauses: [{ matches: [{ principals: [{ matchType: { $case: 'exact', value: `${TD}/ns/default/sa/client` } }] }] }] }],
          }),
        },
      ],
      removed: [],
    });

  it('a same-node connection is judged with the source identity, exactly as over HBONE', () => {
    const { view: v, state } = view();
    const dst = state.workloadByIp('10.200.1.5')!;
    const req = {
      destination: dst,
      target: { address: '10.200.1.5', port: 8080 },
      source: { identity: id('client'), address: '10.200.1.9', port: 40000 },
      sourceIp: '10.200.1.9',
      mtls: true,
    };
    const local = admit(v, { ...req, sameNode: true });
    expect(local.allowed).toBe(true);
    expect(local.connection).toEqual({ sourceIdentity: id('client'), sourceIp: '10.200.1.9', destinationIp: '10.200.1.5', destinationPort: 8080 });
    expect(local.record).toMatchObject({ reporter: 'destination', sameNode: true, mtls: true, destination: { identity: id('local-web') } });
    denyClient(state);
    const deniedLocal = admit(v, { ...req, sameNode: true });
    const deniedHbone = admit(v, req);
    expect(deniedLocal.allowed).toBe(false);
    expect(deniedLocal.verdict.policy).toBe(deniedHbone.verdict.policy);
    expect(deniedHbone.record.sameNode).toBeUndefined();
  });

  it('plaintext carries no identity: STRICT refuses it, PERMISSIVE admits it', () => {
    const { view: v, state } = view();
    const dst = state.workloadByIp('10.200.1.5')!;
    const req = {
      destination: dst,
      target: { address: '10.200.1.5', port: 8080 },
      source: { identity: id('client'), address: '10.200.9.9', port: 1 },
      sourceIp: '10.200.9.9',
      mtls: false,
    };
    expect(admit(v, req).connection.sourceIdentity).toBeUndefined();
    expect(admit(v, req).allowed).toBe(true);
    state.applyPeerAuthentications({
      updated: [
        {
          name: 'default/strict',
          version: 'v',
          value: PeerAuthentication.fromPartial({
            name: 'strict',
            namespace: 'default',
            scope: PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_NAMESPACE,
            mode: MtlsMode.MTLS_MODE_STRICT,
          }),
        },
      ],
      removed: [],
    });
    expect(admit(v, req).allowed).toBe(false);
    expect(admit(v, { ...req, mtls: true }).allowed).toBe(true);
  });
});

describe('per-workload answers', () => {
  it('follow a workload whose addresses or service account change on the same object', () => {
    const { view: v } = view();
    const w = src(v);
    expect(sourceIp(w, '10.200.2.5')).toBe('10.200.1.9');
    expect(spiffeOf(v, w)).toBe(id('client'));
    // the state puts a local pod's addresses on its object in place (Kubernetes mode)
    w.addresses = [Buffer.from([10, 200, 1, 77])];
    expect(sourceIp(w, '10.200.2.5')).toBe('10.200.1.77');
    w.serviceAccount = 'other';
    expect(spiffeOf(v, w)).toBe(id('other'));
    expect(spiffeOf({ trustDomain: 'example.org' }, w)).toBe('spiffe://example.org/ns/default/sa/other');
  });
});
