import { describe, expect, it } from 'vitest';
import { validateResource } from '../resources/validate';
import { translateEndpointSlice, translateNamespace, translatePod, translateSameKind, translateService } from './translate';

const pod = (over: { spec?: object; status?: object; metadata?: object } = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web-1', namespace: 'demo', uid: 'u-1', labels: { app: 'web' }, ...over.metadata },
  spec: {
    nodeName: 'node1',
    serviceAccountName: 'web',
    containers: [{ ports: [{ name: 'http', containerPort: 8080 }, { containerPort: 8080 }] }],
    ...over.spec,
  },
  status: {
    phase: 'Running',
    podIP: '10.1.0.2',
    podIPs: [{ ip: '10.1.0.2' }, { ip: 'fd00::2' }],
    qosClass: 'Guaranteed',
    conditions: [{ type: 'Ready', status: 'True' }],
    ...over.status,
  },
});

describe('Kubernetes -> mesh resources', () => {
  it('a running pod is a Workload with node, IPs, service account, ports and pod facts in annotations', () => {
    const t = translatePod(pod());
    expect(t.problem).toBeUndefined();
    expect(t.resources).toHaveLength(1);
    const w = t.resources[0];
    expect(w).toMatchObject({
      apiVersion: 'nodemesh.io/v1alpha1',
      kind: 'Workload',
      metadata: {
        name: 'web-1',
        namespace: 'demo',
        uid: 'u-1',
        labels: { app: 'web' },
        annotations: { 'nodemesh.io/pod-uid': 'u-1', 'nodemesh.io/qos-class': 'Guaranteed', 'nodemesh.io/ready': 'true' },
      },
      spec: { node: 'node1', serviceAccount: 'web', addresses: ['10.1.0.2', 'fd00::2'], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] },
    });
  });

  it('skips pods the mesh cannot capture yet or at all, and says why', () => {
    expect(translatePod(pod({ spec: { nodeName: undefined } })).problem).toMatch(/not scheduled/);
    expect(translatePod(pod({ spec: { hostNetwork: true } })).problem).toMatch(/host network/);
    expect(translatePod(pod({ status: { phase: 'Succeeded' } })).problem).toMatch(/finished/);
    for (const t of [pod({ spec: { nodeName: undefined } }), pod({ spec: { hostNetwork: true } })]) expect(translatePod(t).resources).toEqual([]);
  });

  it('publishes a scheduled pod before it has an IP (the CNI ADD that precedes the IP waits for it), and adds the IP when kubelet sets it', () => {
    const pending = translatePod(
      pod({ metadata: { uid: '5f0c6e2a-1b2c-4d3e-8f90-0123456789ab' }, status: { phase: 'Pending', podIP: undefined, podIPs: undefined } }),
    );
    expect(pending.problem).toBeUndefined();
    expect(pending.resources[0]).toMatchObject({
      kind: 'Workload',
      metadata: { name: 'web-1', annotations: { 'nodemesh.io/pod-uid': '5f0c6e2a-1b2c-4d3e-8f90-0123456789ab' } },
      spec: { node: 'node1', serviceAccount: 'web', addresses: [] },
    });
    const running = translatePod(pod({ metadata: { uid: '5f0c6e2a-1b2c-4d3e-8f90-0123456789ab' } }));
    expect(running.resources[0]?.spec).toMatchObject({ addresses: ['10.1.0.2', 'fd00::2'] });
  });

  it('allows a Workload without addresses only for Pods: the config API and EndpointSlice endpoints still need one', () => {
    const doc = { apiVersion: 'nodemesh.io/v1alpha1', kind: 'Workload', metadata: { name: 'vm-1', namespace: 'demo' }, spec: { node: 'node1', addresses: [] } };
    expect(() => validateResource(doc)).toThrow(/spec\.addresses.*at least one address/);
    expect(() => validateResource({ ...doc, spec: { node: 'node1' } })).toThrow(/spec\.addresses/);
    // Pods keep the other checks (a duplicate address is still refused).
    const dup = translatePod(pod({ status: { podIP: '10.1.0.2', podIPs: [{ ip: '10.1.0.2' }, { ip: '10.1.0.2' }] } }));
    expect(dup.resources[0]?.spec).toMatchObject({ addresses: ['10.1.0.2'] });
    const bad = translatePod(pod({ status: { podIP: '10.1.0.999', podIPs: [] } }));
    expect(bad.problem).toMatch(/spec\.addresses\[0\]/);
  });

  it('Namespaces keep their labels but not kubectl bookkeeping; Services keep ClusterIP parts', () => {
    const ns = translateNamespace({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name: 'demo',
        labels: { 'nodemesh.io/dataplane-mode': 'ambient' },
        annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' },
      },
      spec: { finalizers: ['kubernetes'] },
    });
    expect(ns.resources[0]).toMatchObject({ kind: 'Namespace', metadata: { name: 'demo', labels: { 'nodemesh.io/dataplane-mode': 'ambient' } }, spec: {} });
    expect(ns.resources[0].metadata.annotations).toBeUndefined();
    const svc = translateService({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'demo' },
      spec: {
        type: 'LoadBalancer',
        clusterIP: '10.96.0.5',
        selector: { app: 'web' },
        ports: [{ port: 80, targetPort: 'http', protocol: 'TCP', nodePort: 30080 }],
      },
    });
    expect(svc.resources[0].spec).toEqual({ clusterIP: '10.96.0.5', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 'http', protocol: 'TCP' }] });
    const noSelector = translateService({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'db', namespace: 'demo' },
      spec: { clusterIP: '10.96.0.6', ports: [{ port: 5432 }] },
    });
    expect(noSelector.resources[0].spec).toMatchObject({ selector: { 'kubernetes.io/service-name': 'db' } });
    expect(
      translateService({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'ext', namespace: 'demo' }, spec: { type: 'ExternalName' } }).problem,
    ).toMatch(/ExternalName/);
  });

  it('EndpointSlice endpoints that are not mesh pods become plain-TCP Workloads the Service selects', () => {
    const slice = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'web-abc', namespace: 'demo', uid: 's-1', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      endpoints: [
        { addresses: ['10.1.0.2'], targetRef: { kind: 'Pod', name: 'web-1' }, nodeName: 'node1', conditions: { ready: true } },
        { addresses: ['192.168.0.7'], targetRef: { kind: 'Pod', name: 'host-agent' }, nodeName: 'node2', conditions: { ready: true } },
        { addresses: ['192.168.0.8'], nodeName: 'node2', conditions: { ready: false } },
      ],
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    };
    const t = translateEndpointSlice(
      slice,
      (_ns, name) => name === 'web-1',
      () => ({ app: 'web' }),
    );
    expect(t.resources).toHaveLength(1);
    expect(t.resources[0]).toMatchObject({
      kind: 'Workload',
      metadata: { name: 'web-abc-ep1', namespace: 'demo', labels: { app: 'web', 'kubernetes.io/service-name': 'web', 'nodemesh.io/dataplane-mode': 'none' } },
      spec: { node: 'node2', addresses: ['192.168.0.7'], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] },
    });
  });

  it('custom resources are validated like config API writes; a bad one is skipped with the field named', () => {
    const good = translateSameKind({
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'PeerAuthentication',
      metadata: { name: 'strict', namespace: 'demo', uid: 'p-1' },
      spec: { mtls: { mode: 'STRICT' } },
    });
    expect(good.resources[0]).toMatchObject({ kind: 'PeerAuthentication', metadata: { uid: 'p-1' } });
    const bad = translateSameKind({
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'p', namespace: 'demo' },
      spec: { action: 'MAYBE' },
    });
    expect(bad.resources).toEqual([]);
    expect(bad.problem).toMatch(/AuthorizationPolicy demo\/p is not mirrored: .*spec\.action/);
  });

  it("Istio's own policies from the API server are mirrored as written; what nodemesh does not support is skipped with the field named", () => {
    const istio = (kind: string, name: string, spec: object) => ({
      apiVersion: 'security.istio.io/v1',
      kind,
      metadata: { name, namespace: 'demo', uid: `u-${name}` },
      spec,
    });
    const allow = translateSameKind(
      istio('AuthorizationPolicy', 'viewer', {
        selector: { matchLabels: { app: 'web' } },
        action: 'ALLOW',
        rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/curl'] } }] }],
      }),
    );
    expect(allow.problem).toBeUndefined();
    expect(allow.resources[0]).toMatchObject({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { uid: 'u-viewer' } });
    expect(translateSameKind(istio('PeerAuthentication', 'default', { mtls: { mode: 'STRICT' } })).resources).toHaveLength(1);
    const refused: Array<[object, RegExp]> = [
      [
        istio('AuthorizationPolicy', 'ext-authz', { action: 'CUSTOM', provider: { name: 'ext' }, rules: [{}] }),
        /AuthorizationPolicy demo\/ext-authz is not mirrored: .*spec\.action.*CUSTOM is not supported/s,
      ],
      [istio('AuthorizationPolicy', 'audit', { action: 'AUDIT', rules: [{}] }), /AuthorizationPolicy demo\/audit is not mirrored: .*spec\.action/s],
      [
        istio('AuthorizationPolicy', 'sas', { rules: [{ from: [{ source: { serviceAccounts: ['demo/curl'] } }] }] }),
        /spec\.rules\[0\]\.from\[0\]\.source.*serviceAccounts/s,
      ],
      [
        istio('AuthorizationPolicy', 'ref', { targetRef: { kind: 'Service', group: '', name: 'web' } }),
        /AuthorizationPolicy demo\/ref is not mirrored: .*targetRef/s,
      ],
      [
        istio('PeerAuthentication', 'off', { mtls: { mode: 'DISABLE' } }),
        /PeerAuthentication demo\/off is not mirrored: .*spec\.mtls\.mode.*DISABLE is not supported/s,
      ],
    ];
    for (const [obj, why] of refused) {
      const t = translateSameKind(obj as Parameters<typeof translateSameKind>[0]);
      expect(t.resources).toEqual([]);
      expect(t.problem).toMatch(why);
    }
  });
});
