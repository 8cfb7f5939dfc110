import { describe, expect, it } from 'vitest';
import { validateResource, type AnyResource } from '../resources';
import { analyze } from './analyze';

const res = (docs: unknown[]): AnyResource[] => docs.map((d) => validateResource(d));
const ns = (name: string, labels?: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
const svc = (name: string, labels?: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'shop', labels },
  spec: { clusterIP: '10.96.0.30', selector: { app: name }, ports: [{ port: 80 }] },
});
const wl = (name: string, node: string, labels: Record<string, string>) => ({
  apiVersion: 'nodemesh.io/v1alpha1',
  kind: 'Workload',
  metadata: { name, namespace: 'shop', labels },
  spec: { node, addresses: ['10.200.1.9'], serviceAccount: name },
});
const gw = (name: string) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'Gateway',
  metadata: { name, namespace: 'shop' },
  spec: { gatewayClassName: 'nodemesh-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
});
const route = (parent: string, backend: string) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name: 'r', namespace: 'shop' },
  spec: { parentRefs: [{ name: parent, kind: 'Service', group: '' }], rules: [{ backendRefs: [{ name: backend, port: 80 }] }] },
});
const ap = (spec: unknown) => ({ apiVersion: 'security.nodemesh.io/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'p', namespace: 'shop' }, spec });

const GOOD = [
  ns('shop', { 'nodemesh.io/dataplane-mode': 'ambient', 'nodemesh.io/use-waypoint': 'wp' }),
  gw('wp'),
  svc('web'),
  wl('web-1', 'node1', { app: 'web' }),
  route('web', 'web'),
  ap({ selector: { matchLabels: { app: 'web' } } }),
];

describe('analyze', () => {
  it('finds nothing in a consistent configuration whose nodes all run a node proxy', () => {
    expect(analyze({ resources: res(GOOD), connectedNodes: new Set(['node1']) })).toEqual([]);
  });

  it('names a route to a missing Service, a backend that does not exist, and sorts errors first', () => {
    const out = analyze({ resources: res([...GOOD.slice(0, 4), route('nope', 'gone'), ap({ selector: { matchLabels: { app: 'none' } } })]) });
    expect(out.map((f) => [f.severity, f.code, f.resource])).toEqual([
      ['Error', 'NM0101', 'HTTPRoute/shop/r'],
      ['Error', 'NM0102', 'HTTPRoute/shop/r'],
      ['Warning', 'NM0201', 'AuthorizationPolicy/shop/p'],
    ]);
    expect(out[1]!.message).toMatch(/backendRef Service shop\/gone does not exist/);
  });

  it('names a targetRef to nothing and a use-waypoint label (either spelling) naming no waypoint', () => {
    const out = analyze({
      resources: res([
        ns('shop', { 'istio.io/use-waypoint': 'missing' }),
        svc('web', { 'nodemesh.io/use-waypoint': 'wp2' }),
        ap({ targetRefs: [{ kind: 'Service', group: '', name: 'ghost' }] }),
      ]),
    });
    expect(out.map((f) => [f.code, f.resource])).toEqual([
      ['NM0202', 'AuthorizationPolicy/shop/p'],
      ['NM0301', 'Namespace/shop'],
      ['NM0301', 'Service/shop/web'],
    ]);
    expect(out[1]!.message).toMatch(/nodemesh waypoint apply -n shop --name missing/);
  });

  it('warns about a mesh-wide Istio policy in istio-system, which here binds only that namespace, unless it is the root namespace', () => {
    const inIstioSystem = (kind: string, spec: unknown) => ({
      apiVersion: 'security.istio.io/v1',
      kind,
      metadata: { name: 'default', namespace: 'istio-system' },
      spec,
    });
    const docs = [
      inIstioSystem('PeerAuthentication', { mtls: { mode: 'STRICT' } }),
      {
        ...inIstioSystem('AuthorizationPolicy', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['legacy'] } }] }] }),
        metadata: { name: 'deny-legacy', namespace: 'istio-system' },
      },
      // selecting workloads of istio-system is what it says: no warning
      { ...inIstioSystem('AuthorizationPolicy', { selector: { matchLabels: { app: 'istiod' } } }), metadata: { name: 'istiod', namespace: 'istio-system' } },
      {
        apiVersion: 'nodemesh.io/v1alpha1',
        kind: 'Workload',
        metadata: { name: 'istiod-0', namespace: 'istio-system', labels: { app: 'istiod' } },
        spec: { node: 'node1', addresses: ['10.200.1.3'], serviceAccount: 'istiod' },
      },
    ];
    const out = analyze({ resources: res(docs) });
    expect(out.map((f) => [f.severity, f.code, f.resource])).toEqual([
      ['Warning', 'NM0203', 'AuthorizationPolicy/istio-system/deny-legacy'],
      ['Warning', 'NM0203', 'PeerAuthentication/istio-system/default'],
    ]);
    expect(out[1]!.message).toMatch(
      /applies only to workloads in istio-system: move it to nodemesh-system, or run the control plane with NODEMESH_ROOT_NAMESPACE=istio-system/,
    );
    expect(analyze({ resources: res(docs), rootNamespace: 'istio-system' })).toEqual([]);
  });

  it('warns about enrolled workloads on nodes with no node proxy connected; skips it when unknown', () => {
    const out = analyze({ resources: res(GOOD), connectedNodes: new Set(['node2']) });
    expect(out).toEqual([
      expect.objectContaining({ severity: 'Warning', code: 'NM0401', resource: 'Namespace/shop', message: expect.stringMatching(/node\(s\) node1/) }),
    ]);
    expect(analyze({ resources: res(GOOD) })).toEqual([]);
  });
});
