// Pure: where kubelet puts a pod's cgroup on cgroup v2, for both of its cgroup drivers, and how to
// read a pod UID and QoS class back from such a path.
//
//   systemd driver:  kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid, - as _>.slice
//                    kubepods.slice/kubepods-pod<uid_>.slice               (Guaranteed pods)
//                    …/cri-containerd-<container id>.scope                 (one per container)
//   cgroupfs driver: kubepods/<qos>/pod<uid>
//                    kubepods/pod<uid>                                     (Guaranteed pods)
//                    …/<container id>
//
// The kubepods root is relative to the cgroup v2 mount; it is configurable so that a test (or a
// kubelet started with --cgroup-root) can put the tree somewhere else.

export type CgroupDriver = 'systemd' | 'cgroupfs';
export type QosClass = 'guaranteed' | 'burstable' | 'besteffort';

/** The kubepods roots kubelet uses by default, systemd driver first. */
export const DEFAULT_KUBEPODS_ROOTS: readonly string[] = ['kubepods.slice', 'kubepods'];

const UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A Kubernetes object UID (RFC 4122 text form, lower case). */
export function isPodUid(uid: string): boolean {
  return UID.test(uid);
}

/** The pod UID inside a string that ends with one ("Pod/<uid>", "<uid>"), or undefined. */
export function podUidIn(text: string): string | undefined {
  const m = /([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/.exec(text.toLowerCase());
  return m ? m[1] : undefined;
}

function checkUid(uid: string): string {
  if (!isPodUid(uid)) throw new RangeError(`'${uid}' is not a pod UID (expected 8-4-4-4-12 lower-case hex, as metadata.uid)`);
  return uid;
}

function trimRoot(root: string): string {
  const r = root.replace(/^\/+|\/+$/g, '');
  if (!r || r.split('/').some((p) => p === '..' || p === '.'))
    throw new RangeError(`kubepods root '${root}' must be a relative path below the cgroup v2 mount`);
  return r;
}

/** Which driver a kubepods root belongs to: a `.slice` leaf means systemd. */
export function driverOfRoot(root: string): CgroupDriver {
  return trimRoot(root).endsWith('.slice') ? 'systemd' : 'cgroupfs';
}

/** The systemd unit prefix of a kubepods root ("kubepods" for "kubepods.slice", "a-b" for ".../a-b.slice"). */
function slicePrefix(root: string): string {
  const leaf = root.split('/').pop() as string;
  return leaf.slice(0, -'.slice'.length);
}

/** The pod's cgroup directory (relative to the cgroup v2 mount) under one root, for one QoS class. */
export function podCgroupPath(root: string, uid: string, qos: QosClass): string {
  const r = trimRoot(root);
  checkUid(uid);
  if (driverOfRoot(r) === 'systemd') {
    const p = slicePrefix(r);
    const u = uid.replace(/-/g, '_');
    return qos === 'guaranteed' ? `${r}/${p}-pod${u}.slice` : `${r}/${p}-${qos}.slice/${p}-${qos}-pod${u}.slice`;
  }
  return qos === 'guaranteed' ? `${r}/pod${uid}` : `${r}/${qos}/pod${uid}`;
}

/** Every place the pod's cgroup can be under the given roots (every QoS class). */
export function podCgroupCandidates(uid: string, roots: readonly string[] = DEFAULT_KUBEPODS_ROOTS): string[] {
  const out: string[] = [];
  for (const root of roots) for (const qos of ['burstable', 'besteffort', 'guaranteed'] as const) out.push(podCgroupPath(root, uid, qos));
  return out;
}

/** The QoS-class directories of a root that hold non-guaranteed pods (relative to the mount). */
export function qosDirs(root: string): Array<{ qos: QosClass; dir: string }> {
  const r = trimRoot(root);
  if (driverOfRoot(r) === 'systemd') {
    const p = slicePrefix(r);
    return (['burstable', 'besteffort'] as const).map((qos) => ({ qos, dir: `${r}/${p}-${qos}.slice` }));
  }
  return (['burstable', 'besteffort'] as const).map((qos) => ({ qos, dir: `${r}/${qos}` }));
}

export interface PodCgroupName {
  readonly uid: string;
  readonly qos: QosClass;
}

/**
 * The pod a cgroup directory name under a root or QoS directory stands for, or undefined when it
 * is not a pod directory (a QoS slice, a container scope, something else).
 */
export function parsePodCgroupName(name: string, root: string, qos: QosClass): PodCgroupName | undefined {
  const r = trimRoot(root);
  let raw: string | undefined;
  if (driverOfRoot(r) === 'systemd') {
    const p = slicePrefix(r);
    const prefix = qos === 'guaranteed' ? `${p}-pod` : `${p}-${qos}-pod`;
    if (name.startsWith(prefix) && name.endsWith('.slice')) raw = name.slice(prefix.length, -'.slice'.length).replace(/_/g, '-');
  } else if (name.startsWith('pod')) {
    raw = name.slice(3);
  }
  return raw !== undefined && isPodUid(raw) ? { uid: raw, qos } : undefined;
}

/** The container id of a container's cgroup directory name (`cri-containerd-<id>.scope`, `crio-<id>.scope`, `docker-<id>.scope`, or a bare id). */
export function containerIdOf(name: string): string | undefined {
  const m = /^(?:cri-containerd|crio|docker)-([0-9a-f]{12,64})\.scope$/.exec(name) ?? /^([0-9a-f]{64})$/.exec(name);
  return m ? m[1] : undefined;
}

/** The scope name containerd (systemd driver) gives a container's cgroup. */
export function containerScopeName(containerId: string): string {
  if (!/^[0-9a-f]{12,64}$/.test(containerId)) throw new RangeError(`'${containerId}' is not a container id (12-64 lower-case hex)`);
  return `cri-containerd-${containerId}.scope`;
}
