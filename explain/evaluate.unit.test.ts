import { describe, expect, it } from 'vitest';
import { ExplainError } from '../control/api/explain';
import { demoMesh, IPS, ns, policy, snapshotOf, workload, type Doc } from '../test/explain/fixtures';
import { explainConnection } from './evaluate';
import type { ExplainQuery, Explanation } from './model';
import { formatExplanation } from './text';
import { World } from './world';

const explain = (q: ExplainQuery, extra: Doc[] = []): Explanation => explainConnection(new World(snapshotOf(demoMesh(extra))), q);
const id = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;
const refusal = (f: () => unknown): ExplainError => {
  try {
    f();
  } catch (err) {
    if (err instanceof ExplainError) return err;
    throw err;
  }
  throw new Error('expected an ExplainError');
};

describe('explain: through a waypoint (the route, its weights, L7 policy)', () => {
  it('GET from the frontend to the backend Service: the waypoint route, the 90/10 split, the ALLOW rule, the backends admitting the waypoint', () => {
    const e = explain({ from: 'demo/frontend', to: 'backend.demo:80' });
    expect(e.source).toMatchObject({ captured: true, node: 'node1', identity: id('demo', 'frontend') });
    expect(e.path).toBe('waypoint');
    expect(e.hops.map((h) => [h.from, h.to, h.transport, h.fromIdentity, h.toIdentity])).toEqual([
      ['demo/frontend', 'waypoint demo/waypoint', 'hbone', id('demo', 'frontend'), id('demo', 'waypoint')],
      ['waypoint demo/waypoint', 'demo/backend-v1', 'hbone', id('demo', 'waypoint'), id('demo', 'backend')],
    ]);
    expect(e.hops[0]).toMatchObject({ toAddress: `${IPS.waypoint}:15008`, authority: `${IPS.backendVip}:80`, node: 'node1' });
    expect(e.waypoint?.route).toMatchObject({ httpRoute: 'demo/backend-split', rule: 1, match: 1 });
    expect(e.waypoint?.backends.map((b) => [b.service, b.weight, b.percent, b.endpoints])).toEqual([
      ['backend-v1.demo.svc.cluster.local', 90, 90, [`${IPS.backendV1}:8080`]],
      ['backend-v2.demo.svc.cluster.local', 10, 10, [`${IPS.backendV2}:8080`]],
    ]);
    const allow = e.policies.find((p) => p.enforcer === 'waypoint demo/waypoint' && p.action === 'ALLOW');
    expect(allow).toMatchObject({ policy: 'demo/backend-allow-get', rule: 1, allowed: true });
    expect(e.endpoints?.map((x) => [x.workload, x.allowed])).toEqual([
      ['demo/backend-v1', true],
      ['demo/backend-v2', true],
    ]);
    expect(e.verdict).toMatchObject({ kind: 'allowed', allowed: true });
    expect(e.verdict.line).toMatch(
      /^ALLOWED: demo\/frontend -> demo\/backend\.demo\.svc\.cluster\.local:80 through waypoint demo\/waypoint, HTTPRoute demo\/backend-split rule 1: backend-v1 90 %, backend-v2 10 %/,
    );
    const text = formatExplanation(e);
    expect(text.split('\n').pop()).toBe(e.verdict.line);
    expect(text).toContain('HTTPRoute demo/backend-split rule 1 match 1');
  });

  it('an L7 deny by method: DELETE matches the DENY rule at the waypoint (403)', () => {
    const e = explain({ from: 'demo/frontend', to: `${IPS.backendVip}:80`, method: 'DELETE' });
    expect(e.waypoint?.status).toBe(403);
    expect(e.policies.filter((p) => !p.allowed)).toEqual([
      expect.objectContaining({ enforcer: 'waypoint demo/waypoint', policy: 'demo/backend-deny-delete', rule: 1, action: 'DENY' }),
    ]);
    expect(e.hops).toHaveLength(1); // it never leaves the waypoint
    expect(e.verdict).toMatchObject({ kind: 'denied', allowed: false, by: 'waypoint demo/waypoint: demo/backend-deny-delete rule 1' });
  });

  it('an L7 deny by path: a second rule of a DENY policy on the Service matches /admin, not /', () => {
    const adminDeny = policy('backend-deny-admin', {
      targetRefs: [{ group: '', kind: 'Service', name: 'backend' }],
      action: 'DENY',
      rules: [{ to: [{ operation: { methods: ['PUT'] } }] }, { to: [{ operation: { paths: ['/admin*'] } }] }],
    });
    const admin = explain({ from: 'demo/frontend', to: 'backend.demo:80', path: '/admin/users' }, [adminDeny]);
    expect(admin.verdict).toMatchObject({ kind: 'denied', by: 'waypoint demo/waypoint: demo/backend-deny-admin rule 2' });
    const root = explain({ from: 'demo/frontend', to: 'backend.demo:80', path: '/' }, [adminDeny]);
    expect(root.verdict.kind).toBe('allowed');
  });

  it('a caller the ALLOW policy does not name is denied at the waypoint, and the reason says nothing matched', () => {
    const e = explain({ from: 'demo/tcp-echo', to: 'backend.demo:80' });
    const denied = e.policies.find((p) => !p.allowed);
    expect(denied).toMatchObject({ enforcer: 'waypoint demo/waypoint', action: 'ALLOW', allowed: false });
    expect(denied?.policy).toBeUndefined();
    expect(denied?.reason).toContain('no rule of the ALLOW policies (demo/backend-allow-get) matched GET / from spiffe://cluster.local/ns/demo/sa/tcp-echo');
    expect(e.verdict.kind).toBe('denied');
  });
});

describe('explain: the node proxies (same node, HBONE, bypass, STRICT, L4 DENY)', () => {
  it('same node: frontend -> tcp-echo is handed over on node1 with the frontend identity; nothing denies it', () => {
    const e = explain({ from: 'pod-frontend', to: 'tcp-echo.demo.svc.cluster.local' });
    expect(e.destination.port).toBe(9000); // the Service's only port
    expect(e.path).toBe('same-node');
    expect(e.hops[0]).toMatchObject({ transport: 'same-node', fromIdentity: id('demo', 'frontend'), toIdentity: id('demo', 'tcp-echo'), node: 'node1' });
    expect(e.policies.map((p) => [p.kind, p.allowed])).toEqual([
      ['PeerAuthentication', true],
      ['AuthorizationPolicy', true],
    ]);
    expect(e.verdict).toMatchObject({ kind: 'allowed' });
    expect(e.verdict.line).toContain('on the same node (');
  });

  it('a bypass straight at a pod behind a waypoint: HBONE to its node, refused there (only the waypoint may connect)', () => {
    const e = explain({ from: 'demo/frontend', to: `${IPS.backendV1}:8080` });
    expect(e.path).toBe('hbone');
    expect(e.hops[0]).toMatchObject({ to: 'demo/backend-v1', toAddress: `${IPS.backendV1}:15008`, authority: `${IPS.backendV1}:8080` });
    expect(e.policies.find((p) => !p.allowed)).toMatchObject({ enforcer: 'node proxy node2', kind: 'waypoint-binding', policy: 'demo/waypoint' });
    expect(e.verdict).toMatchObject({ kind: 'denied', by: 'node proxy node2: demo/waypoint' });
    expect(e.verdict.line).toContain('only the waypoint (spiffe://cluster.local/ns/demo/sa/waypoint) may connect');
  });

  it('from outside the mesh into a STRICT workload: plaintext, refused by the PeerAuthentication', () => {
    const e = explain({ from: 'outside/client', to: `demo/frontend` });
    expect(e.source).toMatchObject({ captured: false });
    expect(e.path).toBe('plaintext');
    expect(e.hops[0]).toMatchObject({ transport: 'tcp', to: 'demo/frontend', toAddress: `${IPS.frontend}:8080` });
    expect(e.hops[0]?.fromIdentity).toBeUndefined();
    expect(e.policies).toEqual([expect.objectContaining({ kind: 'PeerAuthentication', policy: 'demo/default', action: 'STRICT', allowed: false })]);
    expect(e.verdict).toMatchObject({ kind: 'denied', by: 'node proxy node1: demo/default' });
    // An address no Workload has: the same.
    expect(explain({ from: '192.0.2.7', to: `${IPS.tcpEcho}:9000` }).verdict).toMatchObject({ kind: 'denied', by: 'node proxy node1: demo/default' });
  });

  it('PERMISSIVE instead: plaintext passes the PeerAuthentication, and a namespace DENY cannot match a connection without identity', () => {
    const permissive = {
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'PeerAuthentication',
      metadata: { name: 'tcp-echo-permissive', namespace: 'demo' },
      spec: { selector: { matchLabels: { app: 'tcp-echo' } }, mtls: { mode: 'PERMISSIVE' } },
    };
    const e = explain({ from: 'outside/client', to: 'demo/tcp-echo:9000' }, [permissive]);
    expect(e.policies.map((p) => [p.kind, p.action, p.allowed])).toEqual([
      ['PeerAuthentication', 'PERMISSIVE', true],
      ['AuthorizationPolicy', undefined, true],
    ]);
    expect(e.verdict.kind).toBe('allowed');
  });

  it('DENY by principal, by namespace and by port, each naming the policy and rule that matched', () => {
    const other = [
      ns('other', { 'nodemesh.io/dataplane-mode': 'ambient' }),
      workload('other', 'probe', 'node2', '10.200.2.9', 'probe', { app: 'probe' }),
      policy('tcp-echo-deny-frontend', {
        selector: { matchLabels: { app: 'tcp-echo' } },
        action: 'DENY',
        rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/frontend'] } }] }],
      }),
      policy('tcp-echo-deny-other', {
        selector: { matchLabels: { app: 'tcp-echo' } },
        action: 'DENY',
        rules: [{ from: [{ source: { namespaces: ['other'] } }] }],
      }),
      policy('frontend-deny-9090', { selector: { matchLabels: { app: 'frontend' } }, action: 'DENY', rules: [{ to: [{ operation: { ports: ['9090'] } }] }] }),
    ];
    const byPrincipal = explain({ from: 'demo/frontend', to: 'demo/tcp-echo:9000' }, other);
    expect(byPrincipal.verdict).toMatchObject({ kind: 'denied', by: 'node proxy node1: demo/tcp-echo-deny-frontend' });
    expect(byPrincipal.policies.at(-1)).toMatchObject({ policy: 'demo/tcp-echo-deny-frontend', rule: 1, action: 'DENY', allowed: false });
    const byNamespace = explain({ from: 'other/probe', to: 'tcp-echo.demo:9000' }, other);
    expect(byNamespace.path).toBe('hbone');
    expect(byNamespace.verdict).toMatchObject({ kind: 'denied', by: 'node proxy node1: demo/tcp-echo-deny-other' });
    const byPort = explain({ from: 'other/probe', to: 'demo/frontend:9090' }, other);
    expect(byPort.verdict).toMatchObject({ kind: 'denied', by: 'node proxy node1: demo/frontend-deny-9090' });
    expect(explain({ from: 'other/probe', to: 'demo/frontend:8080' }, other).verdict.kind).toBe('allowed');
  });

  it('a Service whose endpoints disagree: allowed at one, denied at the other (partial), each endpoint listed', () => {
    const extra = [
      workload('demo', 'tcp-echo-b', 'node2', '10.200.2.8', 'tcp-echo', { app: 'tcp-echo', zone: 'b' }, 9000),
      policy('zone-b-deny-frontend', {
        selector: { matchLabels: { zone: 'b' } },
        action: 'DENY',
        rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/frontend'] } }] }],
      }),
    ];
    const e = explain({ from: 'demo/frontend', to: 'tcp-echo.demo:9000' }, extra);
    expect(e.endpoints?.map((x) => [x.workload, x.allowed])).toEqual([
      ['demo/tcp-echo', true],
      ['demo/tcp-echo-b', false],
    ]);
    expect(e.verdict).toMatchObject({ kind: 'partial', allowed: false });
  });
});

describe('explain: leaving the mesh, nowhere to go, and questions it cannot answer', () => {
  it('passthrough: a captured source to an address outside the mesh', () => {
    const e = explain({ from: 'demo/frontend', to: '198.51.100.1:443' });
    expect(e.path).toBe('passthrough');
    expect(e.verdict).toMatchObject({ kind: 'passthrough', allowed: true });
  });

  it('plaintext to a workload that is not enrolled: allowed, nothing enforces', () => {
    const e = explain({ from: 'demo/frontend', to: `${IPS.client}:7000` });
    expect(e.path).toBe('plaintext');
    expect(e.verdict.kind).toBe('allowed');
    expect(e.verdict.line).toContain('not enrolled');
  });

  it('unreachable: a Service port that does not exist is refused by the source node proxy', () => {
    const e = explain({ from: 'demo/frontend', to: 'tcp-echo.demo:1234' });
    expect(e.path).toBe('refused');
    expect(e.verdict).toMatchObject({ kind: 'unreachable', allowed: false, by: 'node proxy node1' });
    expect(e.verdict.line).toContain('has no port 1234 (its ports: 9000)');
  });

  it('unreachable: a waypoint route that does not match answers 404', () => {
    const onlyApi = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'backend-split', namespace: 'demo' },
      spec: {
        parentRefs: [{ group: '', kind: 'Service', name: 'backend', port: 80 }],
        rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/api' } }], backendRefs: [{ name: 'backend-v1', port: 80 }] }],
      },
    };
    const docs = demoMesh().filter((d) => !(d.kind === 'HTTPRoute'));
    const world = new World(snapshotOf([...docs, onlyApi]));
    expect(explainConnection(world, { from: 'demo/frontend', to: 'backend.demo:80', path: '/api/x' }).verdict.kind).toBe('allowed');
    const e = explainConnection(world, { from: 'demo/frontend', to: 'backend.demo:80', path: '/web' });
    expect(e.waypoint?.status).toBe(404);
    expect(e.verdict.kind).toBe('unreachable');
  });

  it('refuses questions it cannot answer, saying why (404 unknown, 400 malformed)', () => {
    const world = new World(snapshotOf(demoMesh()));
    expect(refusal(() => explainConnection(world, { from: 'demo/nope', to: 'backend.demo:80' })).status).toBe(404);
    expect(refusal(() => explainConnection(world, { from: 'backend.demo', to: 'demo/frontend:8080' })).message).toContain('is a Service');
    expect(refusal(() => explainConnection(world, { from: 'demo/frontend', to: IPS.client })).message).toContain('give the port');
    expect(explainConnection(world, { from: 'demo/frontend', to: IPS.tcpEcho }).destination.port).toBe(9000); // its only port
    expect(refusal(() => explainConnection(world, { from: 'demo/frontend', to: 'nowhere.demo:80' })).status).toBe(404);
  });
});
