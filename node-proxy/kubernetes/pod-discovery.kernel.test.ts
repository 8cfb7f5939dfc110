// Pod discovery on real cgroups and netns: kubelet's layout under both drivers, built below a
// throwaway nm- cgroup root, with a real pause process holding a real netns per pod.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { KubeletPods, removeCgroupTree, type KubeSandbox } from '../../lab/kube/kubelet-pods';
import { cgroup2Mount, sleep } from '../../lab/sys';
import { privilegedDescribe } from '../../test/support/privileged';
import { ownNetnsInode, PodDiscovery } from './pod-discovery';

const TAG = `nm-kd${process.pid % 100000}`;

privilegedDescribe('kernel', 'Kubernetes pod discovery (kubelet cgroup layout, pause process netns)', () => {
  let mount: string;
  let systemd: KubeletPods;
  let cgroupfs: KubeletPods;
  const made: KubeSandbox[] = [];
  const uids = {
    burstable: '6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
    guaranteed: '7a2b3c4d-5e6f-4b7c-9d8e-0f1a2b3c4d5e',
    besteffort: '8b3c4d5e-6f70-4c8d-ae9f-1a2b3c4d5e6f',
  };

  beforeAll(async () => {
    mount = cgroup2Mount();
    systemd = new KubeletPods({ cgroupMount: mount, kubepodsRoot: `${TAG}/kubepods.slice`, netnsPrefix: `${TAG}-` });
    cgroupfs = new KubeletPods({ cgroupMount: mount, kubepodsRoot: `${TAG}/kubepods`, netnsPrefix: `${TAG}-` });
    made.push(await systemd.runPodSandbox({ namespace: 'shop', name: 'web-0', uid: uids.burstable, qos: 'burstable' }));
    made.push(await systemd.runPodSandbox({ namespace: 'shop', name: 'db-0', uid: uids.guaranteed, qos: 'guaranteed' }));
    made.push(await cgroupfs.runPodSandbox({ namespace: 'batch', name: 'job-1', uid: uids.besteffort, qos: 'besteffort' }));
    // An app container started after the pause process, in its own scope.
    systemd.startContainer(made[0] as KubeSandbox, 'app', ['sleep', 'infinity'], 'ignore');
    await sleep(100); // the processes have moved themselves into their scopes
  });

  afterAll(async () => {
    const errors: string[] = [];
    for (const k of [systemd, cgroupfs]) await k?.teardown().catch((e: Error) => errors.push(e.message));
    if (mount) await removeCgroupTree(join(mount, TAG)).catch((e: Error) => errors.push(e.message));
    if (errors.length) throw new Error(errors.join('; '));
  });

  it('finds each pod cgroup from its UID, under either driver, at the path kubelet uses', () => {
    const d = new PodDiscovery(mount, [`${TAG}/kubepods.slice`, `${TAG}/kubepods`]);
    expect(d.podCgroup(uids.burstable)).toBe(
      join(mount, TAG, 'kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6f1b2c3d_4e5f_4a6b_8c7d_9e0f1a2b3c4d.slice'),
    );
    expect(d.podCgroup(uids.guaranteed)).toBe(join(mount, TAG, 'kubepods.slice/kubepods-pod7a2b3c4d_5e6f_4b7c_9d8e_0f1a2b3c4d5e.slice'));
    expect(d.podCgroup(uids.besteffort)).toBe(join(mount, TAG, `kubepods/besteffort/pod${uids.besteffort}`));
    expect(d.podCgroup('00000000-0000-4000-8000-000000000000')).toBeUndefined();
  });

  it('lists the running pods (UID, QoS class, driver) by scanning the kubepods tree', () => {
    const d = new PodDiscovery(mount, [`${TAG}/kubepods.slice`, `${TAG}/kubepods`]);
    const pods = d.pods().map((p) => ({ uid: p.uid, qos: p.qos, driver: p.driver }));
    expect(pods.sort((a, b) => a.uid.localeCompare(b.uid))).toEqual([
      { uid: uids.burstable, qos: 'burstable', driver: 'systemd' },
      { uid: uids.guaranteed, qos: 'guaranteed', driver: 'systemd' },
      { uid: uids.besteffort, qos: 'besteffort', driver: 'cgroupfs' },
    ]);
  });

  it("finds the pod's netns through its pause process (the oldest in the pod's cgroup tree), not the node's", () => {
    const d = new PodDiscovery(mount, [`${TAG}/kubepods.slice`, `${TAG}/kubepods`]);
    for (const sb of made) {
      const ns = d.podNetns(sb.podCgroup);
      expect(ns, sb.spec.name).toBeDefined();
      expect(ns?.pid).toBe(sb.pause?.pid);
      expect(ns?.netnsPath).toBe(`/proc/${sb.pause?.pid}/ns/net`);
      expect(ns?.netnsInode).toBe(statSync(sb.netnsPath).ino);
      expect(ns?.netnsInode).not.toBe(ownNetnsInode());
    }
  });

  it('finds no netns once the sandbox stopped, and no cgroup once kubelet removed it', async () => {
    const d = new PodDiscovery(mount, [`${TAG}/kubepods.slice`, `${TAG}/kubepods`]);
    const sb = made[2] as KubeSandbox;
    const cg = sb.podCgroup;
    await cgroupfs.removePod(sb);
    expect(d.podNetns(cg)).toBeUndefined();
    expect(d.podCgroup(uids.besteffort)).toBeUndefined();
    expect(d.pods().map((p) => p.uid)).not.toContain(uids.besteffort);
  });
});
