// The demo's plan: roles spread over nodes, resources the control plane accepts, edges and verdicts.
import { describe, expect, it } from 'vitest';
import { validateResource } from '../../control/resources/validate';
import { planLab } from '../topology';
import { appArgs, assignRoles, demoEdges, demoResources, podWorkloads, serviceTarget } from './demo';

const lab = (nodes: number, podsPerNode: number) => ({ ...planLab({ lab: 't', nodes, podsPerNode }, '/sys/fs/cgroup'), phase: 'ready' as const });

describe('demo plan', () => {
  it('puts frontend and backend on different nodes, tcp-echo beside the frontend, the client outside', () => {
    const roles = assignRoles(lab(2, 2));
    const at = (r: string) => roles.find((x) => x.role === r);
    expect(at('frontend')?.pod.name).toBe('pod1-1');
    expect(at('backend')?.pod.name).toBe('pod2-1');
    expect(at('tcp-echo')?.pod.name).toBe('pod1-2');
    expect(at('client')).toMatchObject({ namespace: 'outside', workload: 'client-pod2-2' });
    expect(roles).toHaveLength(4);
  });

  it('fits one node and turns extra pods into backend replicas', () => {
    const one = assignRoles(lab(1, 5));
    expect(new Set(one.map((r) => r.pod.name)).size).toBe(5);
    expect(one.filter((r) => r.role === 'backend').map((r) => r.version)).toEqual(['v1', 'v2']);
    expect(() => assignRoles(lab(1, 3))).toThrow(/needs 4 pods/);
  });

  it('every resource passes the control plane validation', () => {
    const docs = demoResources(assignRoles(lab(2, 3)));
    for (const d of docs) expect(() => validateResource(d)).not.toThrow();
    const kinds = docs.map((d) => d.kind);
    expect(kinds.filter((k) => k === 'Workload')).toHaveLength(6);
    expect(kinds).toEqual(expect.arrayContaining(['Namespace', 'Service', 'AuthorizationPolicy', 'PeerAuthentication', 'Gateway', 'HTTPRoute']));
    // the backend uses the waypoint; the route splits it 90/10 over the two versions
    const svc = docs.find((d) => d.kind === 'Service' && (d.metadata as { name: string }).name === 'backend') as {
      metadata: { labels: Record<string, string> };
    };
    expect(svc.metadata.labels['nodemesh.io/use-waypoint']).toBe('waypoint');
    const route = docs.find((d) => d.kind === 'HTTPRoute') as { spec: { rules: Array<{ backendRefs: Array<{ name: string; weight: number }> }> } };
    expect(route.spec.rules[0]?.backendRefs.map((b) => [b.name, b.weight])).toEqual([
      ['backend-v1', 90],
      ['backend-v2', 10],
    ]);
    const versions = docs
      .filter((d) => d.kind === 'Workload' && (d.metadata as { labels: Record<string, string> }).labels.app === 'backend')
      .map((d) => (d.metadata as { labels: Record<string, string> }).labels.version);
    expect(versions.sort()).toEqual(['v1', 'v1', 'v2']);
    // four pods: no second version, no route
    expect(demoResources(assignRoles(lab(2, 2))).some((d) => d.kind === 'HTTPRoute')).toBe(false);
    const demoNs = docs.find((d) => d.kind === 'Namespace') as { metadata: { labels: Record<string, string> } };
    expect(demoNs.metadata.labels['nodemesh.io/dataplane-mode']).toBe('ambient');
    const off = demoResources(assignRoles(lab(2, 2)), { enrolled: false }).find((d) => d.kind === 'Namespace') as {
      metadata: { labels: Record<string, string> };
    };
    expect(off.metadata.labels['nodemesh.io/dataplane-mode']).toBe('none');
  });

  it('the frontend calls the backend by VIP in the mesh and by pod address without it', () => {
    const roles = assignRoles(lab(2, 2));
    const fe = roles[0]!;
    expect(appArgs(fe, roles, true)).toContain('http://10.96.0.11:80/');
    expect(appArgs(fe, roles, false)).toContain('http://10.200.2.2:8080/');
    expect(serviceTarget(roles, 'tcp-echo', false)).toBe('10.200.1.3:9000');
    expect(appArgs(roles.find((r) => r.role === 'client')!, roles)).toBeUndefined();
  });

  it("the frontend's call waits 5 s, scaled by the machine's speed factor on a slow machine", () => {
    const roles = assignRoles(lab(2, 2));
    const fe = roles[0]!;
    const limit = (env: NodeJS.ProcessEnv) => {
      const argv = appArgs(fe, roles, true, env)!;
      return argv[argv.indexOf('--call-timeout-ms') + 1];
    };
    expect(limit({})).toBe('5000');
    expect(limit({ NODEMESH_SPEED_FACTOR: '6.5' })).toBe('32500');
  });

  it('edges: two allowed, three denied in the mesh; all allowed without it', () => {
    const roles = assignRoles(lab(2, 2));
    expect(demoEdges(roles).map((e) => e.expect)).toEqual(['allow', 'allow', 'deny', 'deny', 'deny']);
    expect(demoEdges(roles, false).every((e) => e.expect === 'allow')).toBe(true);
  });

  it('without the demo every pod is a Workload in namespace default, valid for the control plane', () => {
    const docs = podWorkloads(lab(2, 3));
    expect(docs.map((d) => (d.metadata as { name: string }).name)).toEqual(['pod1-1', 'pod1-2', 'pod1-3', 'pod2-1', 'pod2-2', 'pod2-3']);
    for (const d of docs) expect(() => validateResource(d)).not.toThrow();
  });
});
