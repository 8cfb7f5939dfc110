import { describe, expect, it } from 'vitest';
import { TunnelProtocol, Workload } from '../../api/gen/nodemesh/workload/v1/workload';
import { ipBytes } from '../../common/ip';
import { formatSpiffeId } from '../../common/identity/spiffe';
import { captureWorkloadOf, cgroupDirOf, identityOf, ownsAddress } from './runtime';
import { cachedSourceBaggage, newTraceparent, sourceBaggage } from './trace';

const w = (init: Parameters<typeof Workload.fromPartial>[0] = {}): Workload =>
  Workload.fromPartial({
    uid: 'Workload/shop/web-1',
    name: 'web-1',
    namespace: 'shop',
    serviceAccount: 'web',
    node: 'node1',
    addresses: [ipBytes('10.200.1.2')],
    tunnelProtocol: TunnelProtocol.TUNNEL_PROTOCOL_HBONE,
    runtime: { netns: '/run/netns/nm-x-pod1-1', cgroup: '/sys/fs/cgroup/unified/nm-x/pod1-1' },
    ...init,
  });

describe('workload runtime', () => {
  it('takes the cgroup relative to the mount, or as given when already below it', () => {
    expect(cgroupDirOf('/nodemesh/pod-a', '/sys/fs/cgroup/unified')).toBe('/sys/fs/cgroup/unified/nodemesh/pod-a');
    expect(cgroupDirOf('nodemesh/pod-a', '/sys/fs/cgroup/')).toBe('/sys/fs/cgroup/nodemesh/pod-a');
    expect(cgroupDirOf('/sys/fs/cgroup/unified/nm-x/pod1-1', '/sys/fs/cgroup/unified')).toBe('/sys/fs/cgroup/unified/nm-x/pod1-1');
  });

  it('turns a Workload into capture settings, or says what is missing', () => {
    expect(captureWorkloadOf(w(), '/sys/fs/cgroup/unified')).toEqual({
      name: 'web-1',
      namespace: 'shop',
      netnsPath: '/run/netns/nm-x-pod1-1',
      cgroupPath: '/sys/fs/cgroup/unified/nm-x/pod1-1',
      addresses: ['10.200.1.2'],
      excludedOutboundPorts: [],
      excludedInboundPorts: [],
      excludedCidrs: [],
    });
    expect(captureWorkloadOf(w({ runtime: undefined }), '/sys/fs/cgroup')).toEqual({ problem: expect.stringMatching(/shop\/web-1 carries no netnsPath/) });
    expect(captureWorkloadOf(w({ runtime: { netns: '/run/netns/a', cgroup: '' } }), '/sys/fs/cgroup')).toEqual({
      problem: expect.stringMatching(/no cgroupPath/),
    });
  });

  it('names the identity from namespace and service account, in the workload’s trust domain if it has one', () => {
    expect(formatSpiffeId(identityOf(w(), 'cluster.local'))).toBe('spiffe://cluster.local/ns/shop/sa/web');
    expect(formatSpiffeId(identityOf(w({ serviceAccount: '' }), 'cluster.local'))).toBe('spiffe://cluster.local/ns/shop/sa/default');
    expect(formatSpiffeId(identityOf(w({ trustDomain: 'other.example' }), 'cluster.local'))).toBe('spiffe://other.example/ns/shop/sa/web');
    expect(ownsAddress(w(), '10.200.1.2')).toBe(true);
    expect(ownsAddress(w(), '10.200.1.3')).toBe(false);
  });
});

describe('trace headers', () => {
  it('makes a new well-formed traceparent per connection, never all-zero ids', () => {
    const a = newTraceparent();
    const b = newTraceparent();
    expect(a).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(a).not.toBe(b);
    expect(newTraceparent((n) => Buffer.alloc(n))).toBe('00-00000000000000000000000000000001-0000000000000001-01');
  });

  it('hands out pooled random hex once each, across refills', () => {
    // 8,192 hex characters per pool, 48 per traceparent: 1,000 of them cross five refills
    const seen = new Set<string>();
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const t = newTraceparent();
      expect(t).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      seen.add(t);
      ids.add(t.slice(3, 35));
      ids.add(t.slice(36, 52));
    }
    expect(seen.size).toBe(1000);
    expect(ids.size).toBe(2000); // no trace or span id handed out twice
  });

  it('describes the source in baggage, escaping values', () => {
    expect(sourceBaggage(w({ canonicalName: 'web', canonicalRevision: 'v1' }))).toBe(
      'k8s.cluster.name=Kubernetes,k8s.namespace.name=shop,k8s.workload.name=web-1,service.name=web,service.version=v1',
    );
    expect(sourceBaggage(w({ workloadType: 'Pod', name: 'a b' }))).toContain('k8s.pod.name=a%20b');
    const one = w({ canonicalName: 'web' });
    expect(cachedSourceBaggage(one)).toBe(sourceBaggage(one));
    expect(cachedSourceBaggage(one)).toBe(cachedSourceBaggage(one));
  });
});
