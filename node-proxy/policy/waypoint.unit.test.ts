import { describe, expect, it } from 'vitest';
import { AuthorizationAction, AuthorizationScope, GatewayAddress, TunnelProtocol } from '../../api/gen/nodemesh/workload/v1/workload';
import { ipBytes } from '../../control/workload/addresses';
import { addressesIn, putAddresses } from '../state/testing/addresses';
import { WorkloadState } from '../state/workload-state';
import { policyContext } from './context';
import { evaluate } from './evaluate';
import type { PolicyConnection } from './model';
import { waypointBindings } from './waypoint';

type GatewayInit = Parameters<typeof GatewayAddress.fromPartial>[0];

const { workload, service } = addressesIn('shop');
const put = putAddresses;

const API = 'shop/api.shop.svc.cluster.local';
const apiPorts = { [API]: { ports: [{ servicePort: 80, targetPort: 8080 }] } };
const WP_ID = 'spiffe://cluster.local/ns/shop/sa/waypoint';
const CLIENT_ID = 'spiffe://cluster.local/ns/shop/sa/client';
const atWaypoint = {
  destination: { $case: 'address' as const, value: { network: '', address: ipBytes('10.200.1.50') } },
  hboneMtlsPort: 15008,
  gateway: 'shop/waypoint',
};

function state(apiWaypoint: GatewayInit | undefined): WorkloadState {
  const s = new WorkloadState('node-1');
  put(
    s,
    service('api', '10.96.0.30', { waypoint: apiWaypoint && GatewayAddress.fromPartial(apiWaypoint) }),
    service('plain', '10.96.0.31'),
    workload('api-1', '10.200.1.7', { services: apiPorts }),
    workload('other-1', '10.200.1.8'),
    // The waypoint's own workload: service account = Gateway name, not enrolled.
    workload('waypoint-1', '10.200.1.50', { serviceAccount: 'waypoint', tunnelProtocol: TunnelProtocol.TUNNEL_PROTOCOL_NONE }),
    workload('client', '10.200.1.9'),
  );
  return s;
}

const conn = (sourceIdentity: string | undefined, sourceIp = '10.200.1.9'): PolicyConnection => ({
  sourceIdentity,
  sourceIp,
  destinationIp: '10.200.1.7',
  destinationPort: 8080,
});

describe('waypoint binding', () => {
  it('binds a workload to the waypoint of a Service that selects it, with the waypoint instance’s identity', () => {
    const s = state(atWaypoint);
    const api = s.workload('Workload/shop/api-1')!;
    expect(waypointBindings(s, api)).toEqual([{ gateway: 'shop/waypoint', via: 'Service api.shop.svc.cluster.local', identities: [WP_ID] }]);
    expect(waypointBindings(s, s.workload('Workload/shop/other-1')!)).toEqual([]);
    expect(policyContext(s, api, 8080).hasWaypoint).toBe(true);
  });

  it('admits only the waypoint: another mesh identity and plaintext are refused with the reason', () => {
    const s = state(atWaypoint);
    const ctx = policyContext(s, s.workload('Workload/shop/api-1')!, 8080);
    expect(evaluate(conn(WP_ID, '10.200.1.50'), ctx)).toMatchObject({ allowed: true });
    const direct = evaluate(conn(CLIENT_ID), ctx);
    expect(direct).toMatchObject({ allowed: false, policy: 'Gateway/shop/waypoint' });
    expect(direct.reason).toBe(
      'shop/api-1 is bound to waypoint shop/waypoint (Service api.shop.svc.cluster.local): only the waypoint (spiffe://cluster.local/ns/shop/sa/waypoint) may connect to it, ' +
        'so its L7 policy cannot be bypassed, and this connection came from spiffe://cluster.local/ns/shop/sa/client; send the traffic to the Service address so it goes through the waypoint',
    );
    expect(evaluate(conn(undefined), ctx).reason).toMatch(/came in plaintext from 10\.200\.1\.9 \(no peer identity\)/);
    // Not bound: the same client is allowed (no policy).
    const other = policyContext(s, s.workload('Workload/shop/other-1')!, 8080);
    expect(evaluate({ ...conn(CLIENT_ID), destinationIp: '10.200.1.8' }, other)).toMatchObject({ allowed: true });
  });

  it('applies Authorizations to traffic from the waypoint with the waypoint as the peer', () => {
    const s = state(atWaypoint);
    s.applyAuthorizations({
      updated: [
        {
          name: 'shop/only-client',
          version: 'v',
          value: {
            $type: 'nodemesh.workload.v1.Authorization',
            name: 'only-client',
            namespace: 'shop',
            scope: AuthorizationScope.AUTHORIZATION_SCOPE_NAMESPACE,
            action: AuthorizationAction.AUTHORIZATION_ACTION_ALLOW,
            rules: [
              {
                $type: 'nodemesh.workload.v1.Rule',
                clauses: [
                  {
                    $type: 'nodemesh.workload.v1.Clause',
                    matches: [{ principals: [{ matchType: { $case: 'exact', value: 'cluster.local/ns/shop/sa/client' } }] } as never],
                  },
                ],
                l7Attributes: [],
              },
            ],
          },
        },
      ],
      removed: [],
    });
    const v = evaluate(conn(WP_ID, '10.200.1.50'), policyContext(s, s.workload('Workload/shop/api-1')!, 8080));
    expect(v).toMatchObject({ allowed: false, reason: expect.stringMatching(/no ALLOW policy matched/) });
  });

  it('a workload’s own waypoint binds it too; a waypoint given as a Service host name admits its instances', () => {
    const s = state(undefined);
    put(
      s,
      service('wp', '10.96.0.99', { ports: [{ servicePort: 15008, targetPort: 15008 }] }),
      workload('wp-a', '10.200.1.60', {
        serviceAccount: 'wp',
        services: { 'shop/wp.shop.svc.cluster.local': { ports: [{ servicePort: 15008, targetPort: 15008 }] } },
      }),
      workload('db-1', '10.200.1.70', {
        waypoint: {
          destination: { $case: 'hostname', value: { namespace: 'shop', hostname: 'wp.shop.svc.cluster.local' } },
          hboneMtlsPort: 15008,
          gateway: 'shop/wp',
        },
      }),
    );
    const db = s.workload('Workload/shop/db-1')!;
    expect(waypointBindings(s, db)).toEqual([
      { gateway: 'shop/wp', via: 'its own nodemesh.io/use-waypoint', identities: ['spiffe://cluster.local/ns/shop/sa/wp'] },
    ]);
    const ctx = policyContext(s, db, 5432);
    expect(
      evaluate({ sourceIdentity: 'spiffe://cluster.local/ns/shop/sa/wp', sourceIp: '10.200.1.60', destinationIp: '10.200.1.70', destinationPort: 5432 }, ctx)
        .allowed,
    ).toBe(true);
    expect(evaluate({ sourceIdentity: CLIENT_ID, sourceIp: '10.200.1.9', destinationIp: '10.200.1.70', destinationPort: 5432 }, ctx).allowed).toBe(false);
  });

  it('a waypoint address that is no known workload is expected to present the conventional identity (service account = Gateway name)', () => {
    const s = state({ ...atWaypoint, destination: { $case: 'address', value: { network: '', address: ipBytes('10.200.9.9') } } });
    expect(waypointBindings(s, s.workload('Workload/shop/api-1')!)[0]!.identities).toEqual([WP_ID]);
  });

  it('an unresolved waypoint admits nobody (fail closed) and says why', () => {
    const s = state({ gateway: 'shop/missing', unresolvedReason: 'no Gateway shop/missing', hboneMtlsPort: 0, destination: undefined });
    const ctx = policyContext(s, s.workload('Workload/shop/api-1')!, 8080);
    expect(ctx.hasWaypoint).toBe(false);
    const v = evaluate(conn(WP_ID, '10.200.1.50'), ctx);
    expect(v).toMatchObject({ allowed: false, policy: 'Gateway/shop/missing' });
    expect(v.reason).toMatch(
      /bound to waypoint shop\/missing \(Service api\.shop\.svc\.cluster\.local\), which cannot be used \(no Gateway shop\/missing\).*fail closed/,
    );
  });

  it('a view without services (older callers) keeps the workload-only waypoint flag and no binding', () => {
    const s = state(atWaypoint);
    const api = s.workload('Workload/shop/api-1')!;
    const ctx = policyContext({ authorizationsFor: (w) => s.authorizationsFor(w) }, api, 8080);
    expect(ctx.waypoints).toBeUndefined();
    expect(evaluate(conn(CLIENT_ID), ctx).allowed).toBe(true);
  });
});
