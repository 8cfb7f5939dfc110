import { describe, expect, it } from 'vitest';
import { validateResource } from '../../control/resources/validate';
import { WAYPOINT_NODE_FLAGS } from '../../waypoint/process-flags';
import { planLab } from '../topology';
import { leastLoadedNode, nodeLoad, planWaypointPod, waypointArgv, waypointNodeLines, waypointPodName, waypointWorkload } from './plan';

const t = { ...planLab({ lab: 'nmwpl', nodes: 2, podsPerNode: 3 }, '/sys/fs/cgroup/unified'), phase: 'ready' as const };

describe('lab waypoint pods (plan)', () => {
  it('puts a waypoint on the least-loaded node, ties to the lower index', () => {
    expect(leastLoadedNode(t, nodeLoad(t, [], []))).toBe('node1');
    expect(leastLoadedNode(t, nodeLoad(t, [], ['pod1-1', 'pod1-2', 'pod2-1', 'node1', 'control']))).toBe('node2');
    const w = planWaypointPod(t, { namespace: 'demo', name: 'waypoint' }, 'node2', []);
    expect(leastLoadedNode(t, nodeLoad(t, [w], ['pod1-1']))).toBe('node1');
  });

  it('names the pod wp-<gateway>, gives it a free slot at the top of the node range and a short veth name', () => {
    const a = planWaypointPod(t, { namespace: 'demo', name: 'waypoint' }, 'node2', []);
    expect(a.pod).toMatchObject({
      name: 'wp-waypoint',
      node: 'node2',
      ip: '10.200.2.201',
      netns: 'nm-nmwpl-wp-waypoint',
      gateway: '10.200.2.1',
      cgroup: '/sys/fs/cgroup/unified/nm-nmwpl/wp-waypoint',
    });
    const b = planWaypointPod(t, { namespace: 'other', name: 'waypoint' }, 'node2', [a]);
    expect(b.pod.name).toBe('wp-waypoint-other');
    expect(b.pod.ip).toBe('10.200.2.202');
    expect(b.pod.hostIfName.length).toBeLessThanOrEqual(15);
    expect(waypointPodName({ namespace: 'x', name: 'w' }, new Set(['wp-w', 'wp-w-x']))).toBe('wp-w-x-2');
    expect(waypointNodeLines(t, a)).toEqual([
      // the pod's MAC follows its address: made again at the same address, it has the same MAC
      'link add nm-wp2-1 type veth peer name eth0 address 02:6e:6d:02:02:c9 netns nm-nmwpl-wp-waypoint',
      'link set nm-wp2-1 master nm-pods',
      'link set nm-wp2-1 up',
    ]);
  });

  it('describes the waypoint as an unenrolled Workload with sa = gateway name and the gateway-name label, valid for the control plane', () => {
    const w = planWaypointPod(t, { namespace: 'demo', name: 'waypoint' }, 'node1', []);
    const doc = waypointWorkload(w);
    expect(() => validateResource(doc)).not.toThrow();
    expect(doc).toMatchObject({
      metadata: {
        name: 'wp-waypoint',
        namespace: 'demo',
        labels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint', 'nodemesh.io/dataplane-mode': 'none' },
      },
      spec: { serviceAccount: 'waypoint', node: 'node1', addresses: ['10.200.1.201'] },
    });
    expect(waypointArgv(w, { cliEntry: '/x/main.js', nodeToken: '/t/node1.token', trustBundle: '/t/tb.pem', control: '10.199.0.254:15012' }, 'node')).toEqual([
      'node',
      ...WAYPOINT_NODE_FLAGS,
      '/x/main.js',
      'waypoint',
      'run',
      '--name',
      'waypoint',
      '-n',
      'demo',
      '--control',
      '10.199.0.254:15012',
      '--token-file',
      '/t/node1.token',
      '--trust-bundle',
      '/t/tb.pem',
      '--ip',
      '10.200.1.201',
    ]);
  });
});
