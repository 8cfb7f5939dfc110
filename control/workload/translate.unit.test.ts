import { describe, expect, it } from 'vitest';
import {
  AuthorizationAction,
  AuthorizationScope,
  MtlsMode,
  PeerAuthenticationScope,
  TunnelProtocol,
  type Address,
  type Service,
  type Workload,
} from '../../api/gen/nodemesh/workload/v1/workload';
import { validateResource, type AnyResource } from '../resources';
import { podWorkloadSpec } from '../resources/workload';
import { MemorySnapshot } from '../store/snapshot';
import { ipText } from './addresses';
import { WorkloadApiTranslator, translateWorkloadApi } from './translate';

let rev = 0;
function snapshot(...docs: unknown[]): MemorySnapshot {
  return MemorySnapshot.of(++rev, docs.map((d) => validateResource(d)) as AnyResource[]);
}

const ns = (name: string, labels?: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
const wl = (name: string, ip: string, labels?: Record<string, string>, extra: Record<string, unknown> = {}, namespace = 'default') => ({
  apiVersion: 'nodemesh.io/v1alpha1',
  kind: 'Workload',
  metadata: { name, namespace, labels },
  spec: { node: 'node-1', addresses: [ip], serviceAccount: `sa-${name}`, ...extra },
});
const svc = (name: string, selector: Record<string, string>, ports: unknown[], extra: Record<string, unknown> = {}, labels?: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default', labels },
  spec: { clusterIP: '10.96.0.12', selector, ports, ...extra },
});

function workload(a: Address | undefined): Workload {
  if (a?.type?.$case !== 'workload') throw new Error(`not a workload: ${JSON.stringify(a)}`);
  return a.type.value;
}
function service(a: Address | undefined): Service {
  if (a?.type?.$case !== 'service') throw new Error(`not a service: ${JSON.stringify(a)}`);
  return a.type.value;
}

describe('translateWorkloadApi', () => {
  it('translates a Workload with its identity, addresses, node and runtime paths', () => {
    const s = snapshot(
      ns('default'),
      wl('web-1', '10.200.1.5', { app: 'web', version: 'v2' }, { netnsPath: '/var/run/netns/nm-web-1', cgroupPath: '/nodemesh/web-1' }),
    );
    const w = workload(translateWorkloadApi(s).addresses.get('Workload/default/web-1'));
    expect(w).toMatchObject({
      uid: 'Workload/default/web-1',
      name: 'web-1',
      namespace: 'default',
      serviceAccount: 'sa-web-1',
      node: 'node-1',
      canonicalName: 'web',
      canonicalRevision: 'v2',
      trustDomain: 'cluster.local',
      runtime: { netns: '/var/run/netns/nm-web-1', cgroup: '/nodemesh/web-1' },
    });
    expect(w.addresses.map(ipText)).toEqual(['10.200.1.5']);
  });

  it('enrols by dataplane-mode: the workload label wins over the namespace label', () => {
    const s = snapshot(
      ns('default', { 'nodemesh.io/dataplane-mode': 'ambient' }),
      ns('plain'),
      wl('inherits', '10.200.1.1'),
      wl('opted-out', '10.200.1.2', { 'nodemesh.io/dataplane-mode': 'none' }),
      wl('opted-in', '10.200.1.3', { 'nodemesh.io/dataplane-mode': 'ambient' }, {}, 'plain'),
      wl('not-enrolled', '10.200.1.4', {}, {}, 'plain'),
    );
    const { addresses } = translateWorkloadApi(s);
    const proto = (n: string) => workload(addresses.get(n)).tunnelProtocol;
    expect(proto('Workload/default/inherits')).toBe(TunnelProtocol.TUNNEL_PROTOCOL_HBONE);
    expect(proto('Workload/default/opted-out')).toBe(TunnelProtocol.TUNNEL_PROTOCOL_NONE);
    expect(proto('Workload/plain/opted-in')).toBe(TunnelProtocol.TUNNEL_PROTOCOL_HBONE);
    expect(proto('Workload/plain/not-enrolled')).toBe(TunnelProtocol.TUNNEL_PROTOCOL_NONE);
  });

  it('lists the Services that select a workload, resolving named target ports per workload', () => {
    const s = snapshot(
      ns('default'),
      wl('web-1', '10.200.1.5', { app: 'web' }, { ports: [{ name: 'http', port: 8080 }] }),
      wl('db-1', '10.200.1.6', { app: 'db' }),
      svc('web', { app: 'web' }, [
        { name: 'http', port: 80, targetPort: 'http' },
        { name: 'admin', port: 9000, targetPort: 9001 },
      ]),
    );
    const { addresses } = translateWorkloadApi(s);
    const web = workload(addresses.get('Workload/default/web-1'));
    expect(Object.keys(web.services)).toEqual(['default/web.default.svc.cluster.local']);
    expect(web.services['default/web.default.svc.cluster.local']!.ports.map((p) => [p.servicePort, p.targetPort])).toEqual([
      [80, 8080],
      [9000, 9001],
    ]);
    expect(workload(addresses.get('Workload/default/db-1')).services).toEqual({});

    const svcAddr = service(addresses.get('default/web.default.svc.cluster.local'));
    expect(svcAddr.hostname).toBe('web.default.svc.cluster.local');
    expect(svcAddr.addresses.map((a) => ipText(a.address))).toEqual(['10.96.0.12']);
    expect(svcAddr.ports.map((p) => [p.servicePort, p.targetPort])).toEqual([
      [80, 0],
      [9000, 9001],
    ]);
  });

  it('resolves use-waypoint to the Gateway workload address; the service label wins over the namespace', () => {
    const gateway = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'wp', namespace: 'default', labels: { 'nodemesh.io/waypoint-for': 'all' } },
      spec: { gatewayClassName: 'nodemesh-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
    };
    const s = snapshot(
      ns('default', { 'nodemesh.io/use-waypoint': 'wp' }),
      gateway,
      wl('wp-1', '10.200.1.9', { 'gateway.networking.k8s.io/gateway-name': 'wp', 'nodemesh.io/use-waypoint': 'none' }),
      wl('web-1', '10.200.1.5', { app: 'web' }),
      svc('web', { app: 'web' }, [{ port: 80 }]),
      svc('direct', { app: 'web' }, [{ port: 81 }], { clusterIP: '10.96.0.13' }, { 'nodemesh.io/use-waypoint': 'none' }),
    );
    const { addresses, warnings } = translateWorkloadApi(s);
    expect(warnings).toEqual([]);
    const wp = service(addresses.get('default/web.default.svc.cluster.local')).waypoint;
    expect(wp?.hboneMtlsPort).toBe(15008);
    expect(wp?.gateway).toBe('default/wp');
    expect(wp?.unresolvedReason).toBe('');
    expect(wp?.destination?.$case).toBe('address');
    if (wp?.destination?.$case === 'address') expect(ipText(wp.destination.value.address)).toBe('10.200.1.9');
    expect(workload(addresses.get('Workload/default/web-1')).waypoint).toBeDefined();
    expect(workload(addresses.get('Workload/default/wp-1')).waypoint).toBeUndefined();
    expect(service(addresses.get('default/direct.default.svc.cluster.local')).waypoint).toBeUndefined();
  });

  it('publishes an unresolvable waypoint as unresolved (fail closed), naming the Gateway and why', () => {
    const s = snapshot(ns('default'), svc('web', { app: 'web' }, [{ port: 80 }], {}, { 'nodemesh.io/use-waypoint': 'missing' }));
    const { addresses, warnings } = translateWorkloadApi(s);
    const wp = service(addresses.get('default/web.default.svc.cluster.local')).waypoint;
    expect(wp).toBeDefined();
    expect(wp!.destination).toBeUndefined();
    expect(wp!.gateway).toBe('default/missing');
    expect(wp!.unresolvedReason).toBe('no Gateway default/missing');
    expect(warnings).toEqual([
      'Service default/web: waypoint default/missing cannot be used: no Gateway default/missing; traffic to it is refused (fail closed) until the waypoint resolves',
    ]);
  });

  it('fails closed for a Gateway without address and for an explicitly chosen Gateway of the wrong kind; an inherited one of the wrong kind is no waypoint', () => {
    const gw = (name: string, forWhat: string) => ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name, namespace: 'default', labels: { 'nodemesh.io/waypoint-for': forWhat } },
      spec: { gatewayClassName: 'nodemesh-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
    });
    const s = snapshot(
      ns('default', { 'nodemesh.io/use-waypoint': 'svc-only' }),
      gw('svc-only', 'service'),
      gw('no-address', 'all'),
      wl('svc-only-1', '10.200.1.9', { 'gateway.networking.k8s.io/gateway-name': 'svc-only', 'nodemesh.io/use-waypoint': 'none' }),
      // Inherits the namespace's service waypoint: nothing for workload traffic, no warning.
      wl('inherits', '10.200.1.5'),
      // Asks for a service-only waypoint for its workload traffic: refused.
      wl('asks', '10.200.1.6', { 'nodemesh.io/use-waypoint': 'svc-only' }),
      // A waypoint with no address and no instance.
      svc('web', { app: 'web' }, [{ port: 80 }], {}, { 'nodemesh.io/use-waypoint': 'no-address' }),
    );
    const { addresses, warnings } = translateWorkloadApi(s);
    expect(workload(addresses.get('Workload/default/inherits')).waypoint).toBeUndefined();
    expect(workload(addresses.get('Workload/default/asks')).waypoint).toMatchObject({
      gateway: 'default/svc-only',
      unresolvedReason: 'the Gateway is for service traffic (nodemesh.io/waypoint-for), not workload',
    });
    expect(workload(addresses.get('Workload/default/asks')).waypoint!.destination).toBeUndefined();
    const web = service(addresses.get('default/web.default.svc.cluster.local')).waypoint!;
    expect(web.destination).toBeUndefined();
    expect(web.unresolvedReason).toMatch(/no IPAddress and no Workload or Service labelled gateway.networking.k8s.io\/gateway-name=no-address/);
    expect(warnings).toHaveLength(2);
    expect(warnings.every((w) => /refused \(fail closed\)/.test(w))).toBe(true);
  });

  it('publishes a Pod (nodemesh.io/pod-uid) with workload_type Pod and pod_uid; before it has an IP it has no addresses and is no waypoint address', () => {
    const UID = '5f0c6e2a-1b2c-4d3e-8f90-0123456789ab';
    const podWl = (name: string, addresses: string[], labels?: Record<string, string>) =>
      validateResource(
        {
          apiVersion: 'nodemesh.io/v1alpha1',
          kind: 'Workload',
          metadata: { name, namespace: 'default', labels, annotations: { 'nodemesh.io/pod-uid': UID } },
          spec: { node: 'node-1', addresses },
        },
        { spec: podWorkloadSpec },
      );
    const gw = validateResource({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'wp', namespace: 'default', labels: { 'nodemesh.io/waypoint-for': 'all' } },
      spec: { gatewayClassName: 'nodemesh-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
    });
    const s = MemorySnapshot.of(++rev, [
      validateResource(ns('default', { 'nodemesh.io/dataplane-mode': 'ambient' })),
      gw,
      podWl('web-0', []),
      // The waypoint's first pod has no IP yet; the second has one: the second is the address.
      podWl('wp-a', [], { 'gateway.networking.k8s.io/gateway-name': 'wp' }),
      podWl('wp-b', ['10.200.1.9'], { 'gateway.networking.k8s.io/gateway-name': 'wp' }),
      validateResource(svc('web', { app: 'web' }, [{ port: 80 }], {}, { 'nodemesh.io/use-waypoint': 'wp' })),
    ] as AnyResource[]);
    const { addresses, warnings } = translateWorkloadApi(s);
    const w = workload(addresses.get('Workload/default/web-0'));
    expect(w).toMatchObject({ workloadType: 'Pod', podUid: UID, addresses: [], node: 'node-1', tunnelProtocol: TunnelProtocol.TUNNEL_PROTOCOL_HBONE });
    const wp = service(addresses.get('default/web.default.svc.cluster.local')).waypoint!;
    expect(wp.destination?.$case === 'address' && ipText(wp.destination.value.address)).toBe('10.200.1.9');
    expect(warnings).toEqual([]);
    // A Workload that is not a Pod says so.
    expect(workload(translateWorkloadApi(snapshot(ns('default'), wl('vm', '10.200.1.5'))).addresses.get('Workload/default/vm'))).toMatchObject({
      workloadType: 'Workload',
      podUid: '',
    });
  });

  it('translates L4 authorization: scopes, principals, namespaces, ip blocks, ports', () => {
    const policy = (name: string, namespace: string, spec: unknown) => ({
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name, namespace },
      spec,
    });
    const s = snapshot(
      ns('default'),
      ns('nodemesh-system'),
      wl('web-1', '10.200.1.5', { app: 'web' }),
      wl('db-1', '10.200.1.6', { app: 'db' }),
      policy('mesh-deny', 'nodemesh-system', { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['192.0.2.0/24'] } }] }] }),
      policy('ns-allow', 'default', { rules: [{ from: [{ source: { namespaces: ['default'] } }] }] }),
      policy('web-allow', 'default', {
        selector: { matchLabels: { app: 'web' } },
        rules: [
          {
            from: [{ source: { principals: ['cluster.local/ns/default/sa/client', 'cluster.local/ns/test/*'], notNamespaces: ['evil'] } }],
            to: [{ operation: { ports: ['8080'] } }],
          },
          // Needs L7: dropped from an ALLOW policy.
          { to: [{ operation: { methods: ['GET'] } }] },
        ],
      }),
      policy('web-deny-l7', 'default', {
        selector: { matchLabels: { app: 'web' } },
        action: 'DENY',
        rules: [{ from: [{ source: { namespaces: ['other'] } }], to: [{ operation: { paths: ['/admin'] } }] }],
      }),
      policy('at-waypoint', 'default', { targetRefs: [{ kind: 'Service', group: '', name: 'web' }], rules: [{}] }),
    );
    const { authorizations, addresses } = translateWorkloadApi(s);
    expect([...authorizations.keys()].sort()).toEqual(['default/ns-allow', 'default/web-allow', 'default/web-deny-l7', 'nodemesh-system/mesh-deny']);
    expect(authorizations.get('nodemesh-system/mesh-deny')).toMatchObject({
      scope: AuthorizationScope.AUTHORIZATION_SCOPE_GLOBAL,
      action: AuthorizationAction.AUTHORIZATION_ACTION_DENY,
    });
    expect(authorizations.get('default/ns-allow')!.scope).toBe(AuthorizationScope.AUTHORIZATION_SCOPE_NAMESPACE);

    const allow = authorizations.get('default/web-allow')!;
    expect(allow.scope).toBe(AuthorizationScope.AUTHORIZATION_SCOPE_WORKLOAD_SELECTOR);
    expect(allow.rules).toHaveLength(2);
    expect(allow.rules[0]!.l7Attributes).toEqual([]);
    // The rule that needs L7 is sent as its L4 part (any port) with the attributes it needed.
    expect(allow.rules[1]!.l7Attributes).toEqual(['methods']);
    expect(allow.rules[1]!.clauses.map((c) => c.matches.map((m) => m.destinationPorts))).toEqual([[[]]]);
    const [fromClause, toClause] = allow.rules[0]!.clauses;
    expect(fromClause!.matches[0]!.principals.map((p) => p.matchType)).toEqual([
      { $case: 'exact', value: 'cluster.local/ns/default/sa/client' },
      { $case: 'prefix', value: 'cluster.local/ns/test/' },
    ]);
    expect(fromClause!.matches[0]!.notNamespaces.map((p) => p.matchType)).toEqual([{ $case: 'exact', value: 'evil' }]);
    expect(toClause!.matches[0]!.destinationPorts).toEqual([8080]);

    // DENY keeps the rule without its L7 part: it denies more, never less.
    const deny = authorizations.get('default/web-deny-l7')!;
    expect(deny.rules).toHaveLength(1);
    expect(deny.rules[0]!.clauses.map((c) => c.matches.length)).toEqual([1, 1]);
    expect(deny.rules[0]!.clauses[1]!.matches[0]!.destinationPorts).toEqual([]);
    expect(deny.rules[0]!.l7Attributes).toEqual(['paths']);

    const mesh = authorizations.get('nodemesh-system/mesh-deny')!;
    const cidr = mesh.rules[0]!.clauses[0]!.matches[0]!.sourceIps[0]!;
    expect([ipText(cidr.address), cidr.length]).toEqual(['192.0.2.0', 24]);

    expect(workload(addresses.get('Workload/default/web-1')).authorizationPolicies).toEqual(['default/web-allow', 'default/web-deny-l7']);
    expect(workload(addresses.get('Workload/default/db-1')).authorizationPolicies).toEqual([]);
  });

  it('names the L7 attributes of rules: stripped from DENY, kept as hints on ALLOW rules that cannot match at L4', () => {
    const policy = (name: string, spec: unknown) => ({
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name, namespace: 'default' },
      spec,
    });
    const s = snapshot(
      ns('default'),
      policy('allow-mixed', {
        rules: [
          // One alternative is L4 only: the rule still matches at L4 through it, exactly; no hint.
          { from: [{ source: { requestPrincipals: ['issuer/*'] } }, { source: { namespaces: ['front'] } }] },
          // Every alternative needs L7 (requestPrincipals, then notPaths + hosts) and a header condition.
          {
            from: [{ source: { namespaces: ['front'], requestPrincipals: ['issuer/*'] } }],
            to: [{ operation: { ports: ['8080'], notPaths: ['/admin'], hosts: ['web'] } }],
            when: [
              { key: 'request.headers[x-user]', values: ['alice'] },
              { key: 'source.ip', values: ['10.0.0.0/8'] },
            ],
          },
          // A rule whose `from` is empty constrains nothing.
          { from: [], to: [{ operation: { ports: ['9090'] } }] },
        ],
      }),
      policy('deny-when', {
        action: 'DENY',
        rules: [{ to: [{ operation: { methods: ['DELETE'], notMethods: ['GET'] } }], when: [{ key: 'request.auth.claims[group]', values: ['x'] }] }],
      }),
    );
    const { authorizations } = translateWorkloadApi(s);
    const [mixed, l7, emptyFrom] = authorizations.get('default/allow-mixed')!.rules;
    expect(mixed!.l7Attributes).toEqual([]);
    expect(mixed!.clauses).toHaveLength(1);
    expect(mixed!.clauses[0]!.matches.map((m) => m.namespaces.map((n) => n.matchType))).toEqual([[{ $case: 'exact', value: 'front' }]]);
    expect(l7!.l7Attributes).toEqual(['requestPrincipals', 'hosts', 'notPaths', 'request.headers[x-user]']);
    // Its L4 part: namespaces, ports and the source.ip condition.
    expect(l7!.clauses).toHaveLength(3);
    expect(l7!.clauses[0]!.matches[0]!.namespaces).toHaveLength(1);
    expect(l7!.clauses[1]!.matches[0]!.destinationPorts).toEqual([8080]);
    expect(l7!.clauses[2]!.matches[0]!.sourceIps).toHaveLength(1);
    expect(emptyFrom!.clauses.map((c) => c.matches[0]!.destinationPorts)).toEqual([[9090]]);
    expect(emptyFrom!.l7Attributes).toEqual([]);

    const deny = authorizations.get('default/deny-when')!.rules[0]!;
    expect(deny.l7Attributes).toEqual(['methods', 'notMethods', 'request.auth.claims[group]']);
    expect(deny.clauses).toHaveLength(1); // the (empty) L4 part of the operation: denies every port
  });

  it('translates PeerAuthentication: mesh, namespace and selector scopes, modes, port-level modes; workloads list the selector ones', () => {
    const pa = (name: string, namespace: string, spec: unknown) => ({
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'PeerAuthentication',
      metadata: { name, namespace },
      spec,
    });
    const s = snapshot(
      ns('default'),
      ns('nodemesh-system'),
      wl('db-1', '10.200.1.6', { app: 'db' }),
      wl('web-1', '10.200.1.5', { app: 'web' }),
      pa('mesh', 'nodemesh-system', { mtls: { mode: 'STRICT' } }),
      pa('ns', 'default', { mtls: { mode: 'PERMISSIVE' } }),
      pa('db', 'default', { selector: { matchLabels: { app: 'db' } }, portLevelMtls: { '5432': { mode: 'STRICT' }, '9000': { mode: 'PERMISSIVE' } } }),
      pa('empty-selector', 'default', { selector: { matchLabels: {} }, mtls: { mode: 'STRICT' } }),
      pa('unset', 'default', {}),
    );
    const { peerAuthentications, addresses } = translateWorkloadApi(s);
    expect([...peerAuthentications.keys()].sort()).toEqual(['default/db', 'default/empty-selector', 'default/ns', 'default/unset', 'nodemesh-system/mesh']);
    expect(peerAuthentications.get('nodemesh-system/mesh')).toMatchObject({
      scope: PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_MESH,
      mode: MtlsMode.MTLS_MODE_STRICT,
      portLevelMtls: {},
    });
    expect(peerAuthentications.get('default/ns')).toMatchObject({
      scope: PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_NAMESPACE,
      mode: MtlsMode.MTLS_MODE_PERMISSIVE,
    });
    expect(peerAuthentications.get('default/db')).toMatchObject({
      scope: PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_WORKLOAD_SELECTOR,
      mode: MtlsMode.MTLS_MODE_UNSET,
      portLevelMtls: { 5432: MtlsMode.MTLS_MODE_STRICT, 9000: MtlsMode.MTLS_MODE_PERMISSIVE },
    });
    // An empty selector is namespace-wide (Istio).
    expect(peerAuthentications.get('default/empty-selector')!.scope).toBe(PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_NAMESPACE);
    expect(peerAuthentications.get('default/unset')!.mode).toBe(MtlsMode.MTLS_MODE_UNSET);
    expect(workload(addresses.get('Workload/default/db-1')).peerAuthenticationPolicies).toEqual(['default/db']);
    expect(workload(addresses.get('Workload/default/web-1')).peerAuthenticationPolicies).toEqual([]);

    // A new selector PeerAuthentication re-translates the workloads it selects.
    const translator = new WorkloadApiTranslator();
    translator.translate(s);
    const next = translator.translate(
      s.withChanges(
        s.revision + 1,
        [validateResource(pa('web', 'default', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'STRICT' } })) as AnyResource],
        [],
      ),
    );
    expect(workload(next.addresses.get('Workload/default/web-1')).peerAuthenticationPolicies).toEqual(['default/web']);
    expect(next.peerAuthentications.get('default/web')!.mode).toBe(MtlsMode.MTLS_MODE_STRICT);
  });

  it('publishes a targetRefs policy on a Service without a usable waypoint as DENY-everything for its workloads (fail closed), and stops once the waypoint resolves', () => {
    const policy = (name: string, spec: unknown, namespace = 'default') => ({
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name, namespace },
      spec,
    });
    const ref = (name: string, kind = 'Service') => ({ kind, group: kind === 'Service' ? '' : 'gateway.networking.k8s.io', name });
    const gateway = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'wp', namespace: 'default' },
      spec: {
        gatewayClassName: 'nodemesh-waypoint',
        addresses: [{ type: 'IPAddress', value: '10.200.1.60' }],
        listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }],
      },
    };
    const docs = [
      ns('default'),
      ns('other'),
      wl('web-1', '10.200.1.5', { app: 'web' }),
      wl('api-1', '10.200.1.6', { app: 'api' }),
      wl('db-1', '10.200.1.7', { app: 'db' }),
      svc('web', { app: 'web' }, [{ port: 80 }]),
      // api uses a waypoint; db asks for one that does not exist (unresolved).
      svc('api', { app: 'api' }, [{ port: 80 }], { clusterIP: '10.96.0.13' }, { 'nodemesh.io/use-waypoint': 'wp' }),
      svc('db', { app: 'db' }, [{ port: 5432 }], { clusterIP: '10.96.0.14' }, { 'nodemesh.io/use-waypoint': 'missing' }),
      gateway,
      policy('web-get', { targetRefs: [ref('web')], rules: [{ to: [{ operation: { methods: ['GET'] } }] }] }),
      policy('api-get', { targetRefs: [ref('api')], rules: [{ to: [{ operation: { methods: ['GET'] } }] }] }),
      policy('both', { action: 'DENY', targetRefs: [ref('api'), ref('web'), ref('db')], rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] }),
      policy('nowhere', { targetRefs: [ref('no-such-service')], rules: [{}] }),
      policy('on-gateway', { targetRefs: [ref('wp', 'Gateway')], rules: [{}] }),
      // From another namespace, naming the Service's namespace.
      policy('cross', { targetRefs: [{ ...ref('web'), namespace: 'default' }], rules: [{}] }, 'other'),
    ];
    const { authorizations, addresses, warnings } = translateWorkloadApi(snapshot(...docs));
    expect([...authorizations.keys()].sort()).toEqual(['default/both', 'default/web-get', 'other/cross']);
    // Whatever the policy said (ALLOW GET), nobody could check it: it denies everything.
    expect(authorizations.get('default/web-get')).toMatchObject({
      name: 'web-get',
      namespace: 'default',
      scope: AuthorizationScope.AUTHORIZATION_SCOPE_WORKLOAD_SELECTOR,
      action: AuthorizationAction.AUTHORIZATION_ACTION_DENY,
      rules: [{ clauses: [], l7Attributes: ['targetRefs:Service/default/web'] }],
    });
    // Only the targeted Services without a usable waypoint are named (api's waypoint enforces it there).
    expect(authorizations.get('default/both')!.rules.map((r) => r.l7Attributes)).toEqual([['targetRefs:Service/default/db', 'targetRefs:Service/default/web']]);
    expect(authorizations.get('other/cross')!.rules[0]!.l7Attributes).toEqual(['targetRefs:Service/default/web']);
    const listed = (name: string) => workload(addresses.get(`Workload/default/${name}`)).authorizationPolicies;
    expect(listed('web-1')).toEqual(['default/both', 'default/web-get', 'other/cross']);
    expect(listed('db-1')).toEqual(['default/both']);
    expect(listed('api-1')).toEqual([]);
    expect(warnings).toContain(
      'AuthorizationPolicy default/web-get: targets Service default/web (targetRefs), which has no waypoint; only a waypoint enforces targetRefs policies, ' +
        "so node proxies refuse every connection to the Service's workloads (fail closed) until it has one; attach a waypoint (nodemesh.io/use-waypoint) or select the workloads with spec.selector instead",
    );
    expect(
      warnings.filter((w) =>
        w.startsWith(
          'AuthorizationPolicy default/both: targets Service default/db (targetRefs), whose waypoint default/missing cannot be used (no Gateway default/missing)',
        ),
      ),
    ).toHaveLength(1);

    // web gets the waypoint, db's Gateway appears: the waypoint enforces the policies, node proxies no longer do.
    const withWaypoints = docs.map((d) =>
      d === docs[5]
        ? svc('web', { app: 'web' }, [{ port: 80 }], {}, { 'nodemesh.io/use-waypoint': 'wp' })
        : d === docs[7]
          ? svc('db', { app: 'db' }, [{ port: 5432 }], { clusterIP: '10.96.0.14' }, { 'nodemesh.io/use-waypoint': 'wp' })
          : d,
    );
    const after = translateWorkloadApi(snapshot(...withWaypoints));
    expect([...after.authorizations.keys()]).toEqual([]);
    expect(workload(after.addresses.get('Workload/default/web-1')).authorizationPolicies).toEqual([]);
    expect(workload(after.addresses.get('Workload/default/db-1')).authorizationPolicies).toEqual([]);
    expect(after.warnings.filter((w) => w.startsWith('AuthorizationPolicy'))).toEqual([]);
  });

  it('is deterministic: the same snapshot gives the same messages', () => {
    const docs = [
      ns('default'),
      wl('a', '10.200.1.1', { app: 'x' }),
      svc('x', { app: 'x' }, [{ port: 80 }]),
      svc('y', { app: 'x' }, [{ port: 81 }], { clusterIP: '10.96.0.14' }),
    ];
    const one = translateWorkloadApi(snapshot(...docs));
    const two = translateWorkloadApi(snapshot(...[...docs].reverse()));
    expect([...two.addresses.entries()]).toEqual([...one.addresses.entries()]);
  });

  it('reuses unchanged workload messages across snapshots and re-translates when their context changes', () => {
    const base = [ns('default'), wl('a', '10.200.1.1', { app: 'x' }), wl('b', '10.200.1.2', { app: 'x' }), svc('x', { app: 'x' }, [{ port: 80 }])];
    const resources = base.map((d) => validateResource(d)) as AnyResource[];
    const s1 = MemorySnapshot.of(1, resources);
    const translator = new WorkloadApiTranslator();
    const first = translator.translate(s1);

    // Only workload b changes: a's message is the very same object, b's is new and correct.
    const b2 = validateResource(wl('b', '10.200.1.22', { app: 'x' }));
    const s2 = s1.withChanges(2, [b2], []);
    const second = translator.translate(s2);
    expect(translator.reused).toBe(1);
    expect(second.addresses.get('Workload/default/a')).toBe(first.addresses.get('Workload/default/a'));
    expect([...second.addresses.entries()]).toEqual([...translateWorkloadApi(s2).addresses.entries()]);

    // A new Service selecting both changes their context: everything is translated again.
    const y = validateResource(svc('y', { app: 'x' }, [{ port: 81 }], { clusterIP: '10.96.0.14' }));
    const s3 = s2.withChanges(3, [y], []);
    const third = translator.translate(s3);
    expect(translator.reused).toBe(0);
    expect(Object.keys(workload(third.addresses.get('Workload/default/a')).services)).toEqual([
      'default/x.default.svc.cluster.local',
      'default/y.default.svc.cluster.local',
    ]);
    expect([...third.addresses.entries()]).toEqual([...translateWorkloadApi(s3).addresses.entries()]);
  });
});
