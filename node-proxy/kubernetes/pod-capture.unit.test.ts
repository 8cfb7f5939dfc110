import { describe, expect, it } from 'vitest';
import { TunnelProtocol, Workload } from '../../api/gen/nodemesh/workload/v1/workload';
import { currentSandbox, podCaptureWorkload, podUidOf, type PodLocalView } from './pod-capture';
import type { SandboxRecord } from './pod-registry';

const UID = '0b8e3f9a-1c2d-4e5f-8a9b-0c1d2e3f4a5b';
const OTHER = '11111111-2222-4333-8444-555555555555';
const pod = (over: Partial<Workload> = {}): Workload =>
  Workload.fromPartial({
    uid: 'Workload/shop/web-0',
    podUid: UID,
    name: 'web-0',
    namespace: 'shop',
    node: 'node1',
    serviceAccount: 'web',
    tunnelProtocol: TunnelProtocol.TUNNEL_PROTOCOL_HBONE,
    workloadType: 'Pod',
    ...over,
  });
const sandbox = (over: Partial<SandboxRecord> = {}): SandboxRecord => ({
  namespace: 'shop',
  name: 'web-0',
  uid: UID,
  containerId: 'c'.repeat(64),
  netns: '/run/netns/cni-1',
  ips: ['10.200.1.100'],
  at: '2026-01-01T00:00:00Z',
  ...over,
});
const view = (over: Partial<PodLocalView> = {}): PodLocalView => ({
  sandbox: sandbox(),
  cgroupPath: '/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/x.slice',
  sandboxNetnsInode: 4026532001,
  hostNetnsInode: 4026531992,
  roots: ['kubepods.slice', 'kubepods'],
  ...over,
});

describe('capture settings of a Kubernetes pod', () => {
  it("uses the CNI's netns, the discovered cgroup, and the CNI's addresses until the control plane has the pod IP", () => {
    expect(podCaptureWorkload(pod(), view())).toEqual({
      name: 'web-0',
      namespace: 'shop',
      netnsPath: '/run/netns/cni-1',
      cgroupPath: '/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/x.slice',
      addresses: ['10.200.1.100'],
      excludedOutboundPorts: [],
      excludedInboundPorts: [],
      excludedCidrs: [],
    });
    const withIp = podCaptureWorkload(pod({ addresses: [Buffer.from([10, 200, 1, 100])] }), view({ sandbox: sandbox({ ips: [] }) }));
    expect('addresses' in withIp && withIp.addresses).toEqual(['10.200.1.100']);
  });

  it('falls back to the netns of a process in the pod (discovery) when no CNI event was seen', () => {
    const r = podCaptureWorkload(
      pod({ addresses: [Buffer.from([10, 200, 1, 7])] }),
      view({ sandbox: undefined, sandboxNetnsInode: undefined, discoveredNetns: { path: '/proc/77/ns/net', inode: 4026532009 } }),
    );
    expect(r).toMatchObject({ netnsPath: '/proc/77/ns/net', addresses: ['10.200.1.7'] });
  });

  it('says why a pod cannot be captured', () => {
    expect(podCaptureWorkload(pod(), view({ cgroupPath: undefined }))).toEqual({
      problem: expect.stringMatching(/no cgroup under kubepods.slice, kubepods .*--kubepods-root/),
    });
    expect(podCaptureWorkload(pod({ podUid: '' }), view({ sandbox: undefined, cgroupPath: undefined }))).toEqual({
      problem: expect.stringMatching(/no CNI event and no running pod .* holds its address/),
    });
    expect(podCaptureWorkload(pod(), view({ sandboxNetnsInode: undefined }))).toEqual({ problem: expect.stringMatching(/no network namespace yet/) });
    expect(podCaptureWorkload(pod(), view({ sandboxNetnsInode: 4026531992 }))).toEqual({ problem: expect.stringMatching(/hostNetwork/) });
    expect(podCaptureWorkload(pod(), view({ sandbox: sandbox({ ips: [] }) }))).toEqual({ problem: expect.stringMatching(/no address yet/) });
    expect(podCaptureWorkload(pod(), view({ sandbox: sandbox({ released: true }) }))).toEqual({ problem: expect.stringMatching(/was deleted \(CNI DEL\)/) });
  });

  it("ignores a sandbox of another incarnation of the name (a different UID) and takes the CNI's UID when the Workload has none", () => {
    // Workload.pod_uid (the workload API's field) is the pod's UID.
    expect(currentSandbox(pod({ podUid: OTHER }), sandbox())).toBeUndefined();
    expect(currentSandbox(pod(), sandbox())).toBeDefined();
    expect(podUidOf(pod({ podUid: OTHER }), sandbox())).toBe(OTHER);
    // An older control plane without the field: a uid ending with the pod UID.
    expect(currentSandbox(pod({ podUid: '', uid: `Pod/${OTHER}` }), sandbox())).toBeUndefined();
    expect(podUidOf(pod({ podUid: '', uid: 'shop/web-0' }), sandbox())).toBe(UID);
    expect(podUidOf(pod(), sandbox({ uid: '' }))).toBe(UID);
  });
});
