// The node proxy's answer to the CNI plugin for a Pod that the control plane publishes before it
// has an IP (kubelet sets the IP only after the ADD returns): the ADD waits for the Workload,
// matches it by Workload.pod_uid, captures the pod with the CNI result's address and returns; the
// address stands in for the Workload's until the control plane publishes one. A pod cgroup under
// a temporary "cgroup mount" and a file as the sandbox's netns; the capture daemon is a small
// stand-in that enrols what KubernetesPods.resolve() resolves.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Address, TunnelProtocol, WorkloadStatus as ApiStatus, type Workload } from '../../api/gen/nodemesh/workload/v1/workload';
import { ipBytes } from '../../common/ip';
import { createLogger } from '../../common/log';
import type { WorkloadStatus } from '../capture/enroller';
import type { PodEvent } from '../cni/protocol';
import { WorkloadState } from '../state/workload-state';
import { podCgroupPath } from './kubelet-cgroups';
import { PodDiscovery } from './pod-discovery';
import { PodRegistry } from './pod-registry';
import { KubernetesPods } from './pods';

const UID = '5f0c6e2a-1b2c-4d3e-8f90-0123456789ab';
const OTHER = '11111111-2222-4333-8444-555555555555';
const IP = '10.200.1.100';
const log = createLogger('test', 'silent');

let dir: string;
let state: WorkloadState;
let pods: KubernetesPods;
let registry: PodRegistry;
let netns: string;
const enrolled = new Map<string, WorkloadStatus>();

const pod = (over: Partial<Workload> = {}): Address =>
  Address.fromPartial({
    type: {
      $case: 'workload',
      value: {
        uid: 'Workload/shop/web-0',
        name: 'web-0',
        namespace: 'shop',
        node: 'node1',
        serviceAccount: 'web',
        tunnelProtocol: TunnelProtocol.TUNNEL_PROTOCOL_HBONE,
        status: ApiStatus.WORKLOAD_STATUS_HEALTHY,
        workloadType: 'Pod',
        podUid: UID,
        addresses: [],
        ...over,
      },
    },
  });
const publish = (a: Address): void => state.applyAddresses({ updated: [{ name: 'Workload/shop/web-0', version: 'v', value: a }], removed: [] });
const unpublish = (): void => state.applyAddresses({ updated: [], removed: [{ name: 'Workload/shop/web-0', previous: Address.fromPartial({}) }] });
const event = (kind: PodEvent['kind'], over: Partial<PodEvent> = {}): PodEvent => ({
  kind,
  namespace: 'shop',
  name: 'web-0',
  uid: UID,
  containerId: 'c'.repeat(64),
  netns,
  ips: [IP],
  ...over,
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nm-kpods-'));
  const mount = join(dir, 'cgroup');
  mkdirSync(join(mount, podCgroupPath('kubepods.slice', UID, 'besteffort')), { recursive: true });
  netns = join(dir, 'netns-cni-1');
  writeFileSync(netns, ''); // stands for the sandbox's netns: only its inode is read here
  state = new WorkloadState('node1');
  registry = new PodRegistry();
  pods = new KubernetesPods({ state, discovery: new PodDiscovery(mount, ['kubepods.slice']), registry, log, addTimeoutMs: 1500, retryIntervalMs: 50 });
  enrolled.clear();
  // The capture daemon: enrols every local workload resolve() can place, releases the others.
  pods.bind({
    reconcileSoon: async () => {
      const keep = new Set<string>();
      for (const w of state.localWorkloads()) {
        const r = pods.resolve(w);
        if ('problem' in r) continue;
        const key = `${w.namespace}/${w.name}`;
        keep.add(key);
        enrolled.set(key, { ...r, key, netnsCookie: '1', listeners: ['15001', '15006', '15008'], enrolledAt: '' });
      }
      for (const key of [...enrolled.keys()]) if (!keep.has(key)) enrolled.delete(key);
    },
    enrolment: (key) => enrolled.get(key),
    notServing: () => undefined,
  });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('Kubernetes pods: CNI ADD of a pod published before it has an IP', () => {
  it('waits for the Workload, captures the pod with the CNI address, and lets the control plane address win later', async () => {
    const add = pods.handle(event('ADD'));
    await new Promise((r) => setTimeout(r, 100));
    publish(pod()); // scheduled, no IP yet
    expect(await add).toEqual({ ok: true, captured: true, message: 'pod shop/web-0 captured' });
    expect(enrolled.get('shop/web-0')).toMatchObject({ netnsPath: netns, addresses: [IP] });
    // Until the control plane knows the IP, the CNI's stands in for it on this node.
    const w = state.workloadByIp(IP);
    expect(w?.name).toBe('web-0');
    expect(state.hasLocalAddresses(w!)).toBe(true);

    publish(pod({ addresses: [ipBytes(IP)] })); // kubelet reported the IP
    const now = state.workloadByIp(IP)!;
    expect(state.hasLocalAddresses(now)).toBe(false);
    expect((await pods.handle(event('CHECK'))).ok).toBe(true);
  });

  it('matches the sandbox by pod_uid: a Workload of another incarnation of the name does not answer the ADD', async () => {
    publish(pod({ podUid: OTHER }));
    const r = await pods.handle(event('ADD'));
    expect(r).toMatchObject({ ok: false, retry: true, error: expect.stringMatching(/has not published pod shop\/web-0/) });
    expect(state.workloadByIp(IP)).toBeUndefined();
  });

  it('a pod outside the mesh is answered at once and gets no local address', async () => {
    publish(pod({ tunnelProtocol: TunnelProtocol.TUNNEL_PROTOCOL_NONE }));
    expect(await pods.handle(event('ADD'))).toMatchObject({ ok: true, captured: false });
    expect(state.workloadByIp(IP)).toBeUndefined();
  });

  it('a DEL after the pod was deleted through the API releases it and keeps no sandbox record', async () => {
    publish(pod());
    expect((await pods.handle(event('ADD'))).ok).toBe(true);
    unpublish();
    await pods.handle(event('DEL', { netns: '' })).then((r) => expect(r).toMatchObject({ ok: true, captured: false }));
    expect(enrolled.size).toBe(0);
    expect(registry.all()).toEqual([]);
    expect(state.workloadByIp(IP)).toBeUndefined();
  });
});
