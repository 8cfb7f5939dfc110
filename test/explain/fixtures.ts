// A small mesh for explain's unit tests, shaped like the lab's demo: namespace demo (ambient,
// STRICT) with frontend and tcp-echo on node1, two backend versions on node2 behind the Service
// backend's waypoint (HTTPRoute 90/10 split, ALLOW GET from sa frontend, DENY DELETE), a
// tcp-echo DENY of namespace outside; namespace outside (not enrolled) with a client on node2.
import { validateResource, type AnyResource } from '../../control/resources';
import { MemorySnapshot } from '../../control/store/snapshot';

export type Doc = Record<string, unknown>;

let revision = 0;
export function snapshotOf(docs: readonly Doc[]): MemorySnapshot {
  return MemorySnapshot.of(++revision, docs.map((d) => validateResource(d)) as AnyResource[]);
}

export const ns = (name: string, labels?: Record<string, string>): Doc => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name, ...(labels ? { labels } : {}) },
});

export const workload = (namespace: string, name: string, node: string, ip: string, sa: string, labels: Record<string, string>, port?: number): Doc => ({
  apiVersion: 'nodemesh.io/v1alpha1',
  kind: 'Workload',
  metadata: { name, namespace, labels: { ...labels, 'nodemesh.io/lab-pod': `pod-${name}` } },
  spec: { serviceAccount: sa, node, addresses: [ip], ...(port ? { ports: [{ name: 'http', port }] } : {}) },
});

export const service = (
  name: string,
  vip: string,
  port: number,
  targetPort: number,
  selector: Record<string, string>,
  labels?: Record<string, string>,
): Doc => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'demo', ...(labels ? { labels } : {}) },
  spec: { clusterIP: vip, selector, ports: [{ name: 'http', port, targetPort, appProtocol: port === 9000 ? 'tcp' : 'http' }] },
});

export const policy = (name: string, spec: Record<string, unknown>, namespace = 'demo'): Doc => ({
  apiVersion: 'security.nodemesh.io/v1alpha1',
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace },
  spec,
});

export const IPS = {
  frontend: '10.200.1.1',
  tcpEcho: '10.200.1.2',
  backendV1: '10.200.2.1',
  backendV2: '10.200.2.2',
  client: '10.200.2.3',
  waypoint: '10.200.3.1',
  backendVip: '10.96.0.11',
  tcpEchoVip: '10.96.0.12',
} as const;

/** The demo-shaped mesh; `extra` documents are appended (more policies). */
export function demoMesh(extra: readonly Doc[] = []): Doc[] {
  const backendRef = [{ group: '', kind: 'Service', name: 'backend' }];
  return [
    ns('demo', { 'nodemesh.io/dataplane-mode': 'ambient' }),
    ns('outside'),
    workload('demo', 'frontend', 'node1', IPS.frontend, 'frontend', { app: 'frontend' }, 8080),
    workload('demo', 'tcp-echo', 'node1', IPS.tcpEcho, 'tcp-echo', { app: 'tcp-echo' }, 9000),
    workload('demo', 'backend-v1', 'node2', IPS.backendV1, 'backend', { app: 'backend', version: 'v1' }, 8080),
    workload('demo', 'backend-v2', 'node2', IPS.backendV2, 'backend', { app: 'backend', version: 'v2' }, 8080),
    workload('outside', 'client', 'node2', IPS.client, 'client', { app: 'client' }),
    {
      apiVersion: 'nodemesh.io/v1alpha1',
      kind: 'Workload',
      metadata: {
        name: 'wp-waypoint',
        namespace: 'demo',
        labels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint', 'nodemesh.io/dataplane-mode': 'none' },
      },
      spec: { serviceAccount: 'waypoint', node: 'node3', addresses: [IPS.waypoint] },
    },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'waypoint', namespace: 'demo', labels: { 'nodemesh.io/waypoint-for': 'service' } },
      spec: { gatewayClassName: 'nodemesh-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
    },
    service('backend', IPS.backendVip, 80, 8080, { app: 'backend' }, { 'nodemesh.io/use-waypoint': 'waypoint' }),
    service('backend-v1', '10.96.0.13', 80, 8080, { app: 'backend', version: 'v1' }),
    service('backend-v2', '10.96.0.14', 80, 8080, { app: 'backend', version: 'v2' }),
    service('tcp-echo', IPS.tcpEchoVip, 9000, 9000, { app: 'tcp-echo' }),
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'backend-split', namespace: 'demo' },
      spec: {
        parentRefs: [{ group: '', kind: 'Service', name: 'backend', port: 80 }],
        rules: [
          {
            backendRefs: [
              { name: 'backend-v1', port: 80, weight: 90 },
              { name: 'backend-v2', port: 80, weight: 10 },
            ],
          },
        ],
      },
    },
    policy('backend-allow-get', {
      targetRefs: backendRef,
      action: 'ALLOW',
      rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/frontend'] } }], to: [{ operation: { methods: ['GET'] } }] }],
    }),
    policy('backend-deny-delete', { targetRefs: backendRef, action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] }),
    policy('tcp-echo-deny-outside', {
      selector: { matchLabels: { app: 'tcp-echo' } },
      action: 'DENY',
      rules: [{ from: [{ source: { namespaces: ['outside'] } }] }],
    }),
    {
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'PeerAuthentication',
      metadata: { name: 'default', namespace: 'demo' },
      spec: { mtls: { mode: 'STRICT' } },
    },
    ...extra,
  ];
}
