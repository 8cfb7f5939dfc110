import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Authorization, AuthorizationAction, AuthorizationScope, Clause, Rule } from '../../api/gen/nodemesh/workload/v1/workload';
import { createLogger } from '../../common/log';
import { stringMatch } from '../../control/workload/translate';
import type { PolicyContext } from '../policy/model';
import { PolicyGuard } from './guard';

const CLIENT = 'spiffe://cluster.local/ns/dp/sa/client';
const OTHER = 'spiffe://cluster.local/ns/dp/sa/other';

function denyPrincipal(principal: string): PolicyContext {
  return {
    destination: 'dp/echo',
    authorizations: [
      {
        ...Authorization.fromPartial({
          name: 'deny',
          namespace: 'dp',
          scope: AuthorizationScope.AUTHORIZATION_SCOPE_WORKLOAD_SELECTOR,
          action: AuthorizationAction.AUTHORIZATION_ACTION_DENY,
        }),
        rules: [Rule.fromPartial({ clauses: [Clause.fromPartial({ matches: [{ principals: [stringMatch(principal)] }] })] })],
      },
    ],
    peerAuthentication: { mode: 'PERMISSIVE' },
    hasWaypoint: false,
  };
}

describe('PolicyGuard', () => {
  it('cuts exactly the open connections a new policy refuses, counts them by policy, and forgets closed ones', async () => {
    const registry = new Registry();
    const guard = new PolicyGuard(registry, createLogger('test', 'silent'));
    const cut: string[] = [];
    const conn = (identity: string | undefined, port = 9000) => ({
      sourceIdentity: identity,
      sourceIp: '10.200.1.2',
      destinationIp: '10.200.2.2',
      destinationPort: port,
    });
    guard.add('Workload/dp/echo', conn(CLIENT), { n: 'a' }, () => cut.push('a'));
    guard.add('Workload/dp/echo', conn(OTHER), { n: 'b' }, () => cut.push('b'));
    const forgetC = guard.add('Workload/dp/echo', conn(CLIENT, 9001), { n: 'c' }, () => cut.push('c'));
    guard.add('Workload/dp/gone', conn(CLIENT), { n: 'd' }, () => cut.push('d'));
    forgetC(); // closed on its own before the change
    expect(guard.size).toBe(3);

    const contextFor = (uid: string) => (uid === 'Workload/dp/echo' ? denyPrincipal('cluster.local/ns/dp/sa/client') : undefined);
    expect(guard.recheck(contextFor)).toBe(1);
    expect(cut).toEqual(['a']);
    expect(guard.size).toBe(2); // b allowed, d's destination unknown (left to unenrolment)
    expect(guard.recheck(contextFor)).toBe(0);
    const text = await registry.metrics();
    expect(text).toContain('nodemesh_policy_connections_closed_total{policy="dp/deny"} 1');

    // recheckSoon coalesces a burst of changes into one pass.
    let passes = 0;
    const counting = (uid: string) => (passes++, uid === 'Workload/dp/echo' ? denyPrincipal('cluster.local/ns/dp/sa/other') : undefined);
    guard.recheckSoon(counting);
    guard.recheckSoon(counting);
    await new Promise((r) => setImmediate(r));
    expect(cut).toEqual(['a', 'b']);
    expect(passes).toBe(2); // one pass: one context lookup per (destination, port): echo|9000 and gone|9000
  });
});
