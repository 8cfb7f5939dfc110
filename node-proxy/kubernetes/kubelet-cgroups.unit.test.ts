import { describe, expect, it } from 'vitest';
import { containerIdOf, containerScopeName, driverOfRoot, parsePodCgroupName, podCgroupCandidates, podCgroupPath, podUidIn, qosDirs } from './kubelet-cgroups';

const UID = '6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';

describe('kubelet cgroup layout', () => {
  it('systemd driver: QoS slices, guaranteed pods directly under kubepods.slice, - as _', () => {
    expect(podCgroupPath('kubepods.slice', UID, 'burstable')).toBe(
      'kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6f1b2c3d_4e5f_4a6b_8c7d_9e0f1a2b3c4d.slice',
    );
    expect(podCgroupPath('kubepods.slice', UID, 'besteffort')).toBe(
      'kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6f1b2c3d_4e5f_4a6b_8c7d_9e0f1a2b3c4d.slice',
    );
    expect(podCgroupPath('kubepods.slice', UID, 'guaranteed')).toBe('kubepods.slice/kubepods-pod6f1b2c3d_4e5f_4a6b_8c7d_9e0f1a2b3c4d.slice');
  });

  it('cgroupfs driver: kubepods/<qos>/pod<uid>, guaranteed under kubepods', () => {
    expect(podCgroupPath('kubepods', UID, 'burstable')).toBe(`kubepods/burstable/pod${UID}`);
    expect(podCgroupPath('kubepods', UID, 'guaranteed')).toBe(`kubepods/pod${UID}`);
  });

  it('a configurable root (a test tree) keeps the layout below it', () => {
    expect(driverOfRoot('nm-x/kubepods.slice')).toBe('systemd');
    expect(driverOfRoot('/nm-x/kubepods/')).toBe('cgroupfs');
    expect(podCgroupPath('nm-x/kubepods.slice', UID, 'besteffort')).toBe(
      'nm-x/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6f1b2c3d_4e5f_4a6b_8c7d_9e0f1a2b3c4d.slice',
    );
    expect(qosDirs('nm-x/kubepods.slice').map((d) => d.dir)).toEqual([
      'nm-x/kubepods.slice/kubepods-burstable.slice',
      'nm-x/kubepods.slice/kubepods-besteffort.slice',
    ]);
    expect(qosDirs('kubepods').map((d) => d.dir)).toEqual(['kubepods/burstable', 'kubepods/besteffort']);
  });

  it('candidates cover both drivers and every QoS class', () => {
    const c = podCgroupCandidates(UID);
    expect(c).toHaveLength(6);
    expect(c).toContain(`kubepods/besteffort/pod${UID}`);
    expect(c).toContain('kubepods.slice/kubepods-pod6f1b2c3d_4e5f_4a6b_8c7d_9e0f1a2b3c4d.slice');
  });

  it('refuses a bad UID or a root that climbs out of the mount', () => {
    expect(() => podCgroupPath('kubepods.slice', '../../etc', 'burstable')).toThrow(/not a pod UID/);
    expect(() => podCgroupPath('../kubepods', UID, 'burstable')).toThrow(/relative path below the cgroup v2 mount/);
    expect(() => podCgroupPath('', UID, 'burstable')).toThrow(/relative path/);
  });

  it('reads the pod UID and QoS back from a directory name, and nothing from other names', () => {
    expect(parsePodCgroupName('kubepods-burstable-pod6f1b2c3d_4e5f_4a6b_8c7d_9e0f1a2b3c4d.slice', 'kubepods.slice', 'burstable')).toEqual({
      uid: UID,
      qos: 'burstable',
    });
    expect(parsePodCgroupName('kubepods-pod6f1b2c3d_4e5f_4a6b_8c7d_9e0f1a2b3c4d.slice', 'kubepods.slice', 'guaranteed')).toEqual({
      uid: UID,
      qos: 'guaranteed',
    });
    expect(parsePodCgroupName(`pod${UID}`, 'kubepods', 'besteffort')).toEqual({ uid: UID, qos: 'besteffort' });
    expect(parsePodCgroupName('kubepods-burstable.slice', 'kubepods.slice', 'guaranteed')).toBeUndefined();
    expect(parsePodCgroupName('podnot-a-uid', 'kubepods', 'guaranteed')).toBeUndefined();
  });

  it('container scopes', () => {
    const id = 'a'.repeat(64);
    expect(containerScopeName(id)).toBe(`cri-containerd-${id}.scope`);
    expect(containerIdOf(`cri-containerd-${id}.scope`)).toBe(id);
    expect(containerIdOf(`crio-${id}.scope`)).toBe(id);
    expect(containerIdOf(id)).toBe(id);
    expect(containerIdOf('init.scope')).toBeUndefined();
    expect(() => containerScopeName('x/../y')).toThrow(/not a container id/);
  });

  it('finds a pod UID at the end of a workload uid', () => {
    expect(podUidIn(`Pod/${UID}`)).toBe(UID);
    expect(podUidIn(UID.toUpperCase())).toBe(UID);
    expect(podUidIn('default/web')).toBeUndefined();
  });
});
