// Finding Kubernetes pods on this node from the kernel's side: a pod's cgroup from its UID (kubelet's
// layout, kubelet-cgroups.ts) under the cgroup v2 mount, the pods that run now (a scan of the
// kubepods tree), and a pod's network namespace from a process in its cgroup tree (the sandbox's
// pause process: /proc/<pid>/ns/net — the node proxy needs the host's PID namespace for that).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalIp } from '../state/ip';
import { DEFAULT_KUBEPODS_ROOTS, driverOfRoot, parsePodCgroupName, podCgroupCandidates, qosDirs, type CgroupDriver, type QosClass } from './kubelet-cgroups';

export interface DiscoveredPod {
  readonly uid: string;
  readonly qos: QosClass;
  readonly driver: CgroupDriver;
  /** Absolute path of the pod's cgroup directory. */
  readonly cgroupPath: string;
}

export interface PodNetns {
  /** The oldest process in the pod's cgroup tree (the sandbox's pause process in practice). */
  readonly pid: number;
  /** `/proc/<pid>/ns/net`. */
  readonly netnsPath: string;
  readonly netnsInode: number;
}

const isDir = (p: string): boolean => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

const subdirs = (p: string): string[] => {
  try {
    return readdirSync(p, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
  } catch {
    return [];
  }
};

/** Process start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or undefined if it is gone. */
function startTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

/** Every pid in a cgroup directory and its descendants (bounded depth: pod → container → nested). */
export function cgroupTreePids(dir: string, depth = 4): number[] {
  const out: number[] = [];
  try {
    for (const line of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (line) out.push(Number(line));
  } catch {
    return out;
  }
  if (depth > 0) for (const d of subdirs(dir)) out.push(...cgroupTreePids(join(dir, d), depth - 1));
  return out;
}

/**
 * Pure: the local unicast addresses of a netns from its /proc/<pid>/net/fib_trie (IPv4, `/32 host
 * LOCAL` leaves) and if_inet6 (IPv6, global scope), loopback excluded.
 */
export function parseLocalAddresses(fibTrie: string, ifInet6 = ''): string[] {
  const out = new Set<string>();
  let last: string | undefined;
  for (const line of fibTrie.split('\n')) {
    const leaf = /\|--\s+(\d+\.\d+\.\d+\.\d+)/.exec(line);
    if (leaf) {
      last = leaf[1];
      continue;
    }
    if (last && /\/32 host LOCAL/.test(line) && !last.startsWith('127.')) out.add(last);
  }
  for (const line of ifInet6.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || f[3] !== '00' || !/^[0-9a-f]{32}$/.test(f[0] as string)) continue; // scope 00 = global
    const ip = canonicalIp(((f[0] as string).match(/.{4}/g) as string[]).join(':'));
    if (ip) out.add(ip);
  }
  return [...out];
}

export class PodDiscovery {
  private readonly roots: readonly string[];

  /**
   * @param cgroupMount the cgroup v2 mount (from /proc/mounts)
   * @param roots kubepods roots relative to it (default: kubepods.slice, then kubepods)
   */
  constructor(
    readonly cgroupMount: string,
    roots?: readonly string[],
  ) {
    this.roots = roots && roots.length ? roots : DEFAULT_KUBEPODS_ROOTS;
  }

  get kubepodsRoots(): readonly string[] {
    return this.roots;
  }

  /** The pod's cgroup directory (absolute), or undefined when kubelet has not made it (or removed it). */
  podCgroup(uid: string): string | undefined {
    for (const rel of podCgroupCandidates(uid, this.roots)) {
      const abs = join(this.cgroupMount, rel);
      if (isDir(abs)) return abs;
    }
    return undefined;
  }

  /** Every pod whose cgroup exists under the roots now. */
  pods(): DiscoveredPod[] {
    const out: DiscoveredPod[] = [];
    for (const root of this.roots) {
      const rootDir = join(this.cgroupMount, root);
      if (!isDir(rootDir)) continue;
      const driver = driverOfRoot(root);
      const scan = (dir: string, qos: QosClass): void => {
        for (const name of subdirs(dir)) {
          const p = parsePodCgroupName(name, root, qos);
          if (p) out.push({ uid: p.uid, qos: p.qos, driver, cgroupPath: join(dir, name) });
        }
      };
      scan(rootDir, 'guaranteed');
      for (const { qos, dir } of qosDirs(root)) scan(join(this.cgroupMount, dir), qos);
    }
    return out;
  }

  /** The local addresses of the netns a process is in (from /proc/<pid>/net: no setns, no spawn). */
  addressesOf(pid: number): string[] {
    try {
      const fib = readFileSync(`/proc/${pid}/net/fib_trie`, 'utf8');
      let v6 = '';
      try {
        v6 = readFileSync(`/proc/${pid}/net/if_inet6`, 'utf8');
      } catch {
        /* no IPv6 */
      }
      return parseLocalAddresses(fib, v6);
    } catch {
      return [];
    }
  }

  /**
   * The running pod (cgroup and netns) that holds one of these addresses: how a pod is found when
   * neither a CNI event nor the control plane names its UID (pods that ran before the node proxy).
   */
  podByAddress(addresses: readonly string[]): { pod: DiscoveredPod; netns: PodNetns } | undefined {
    if (addresses.length === 0) return undefined;
    const want = new Set(addresses);
    for (const pod of this.pods()) {
      const netns = this.podNetns(pod.cgroupPath);
      if (netns && this.addressesOf(netns.pid).some((a) => want.has(a))) return { pod, netns };
    }
    return undefined;
  }

  /**
   * The pod's network namespace, from the oldest process in its cgroup tree; undefined while no
   * process runs there yet (before the sandbox starts).
   */
  podNetns(cgroupPath: string): PodNetns | undefined {
    let best: { pid: number; start: number } | undefined;
    for (const pid of cgroupTreePids(cgroupPath)) {
      const start = startTime(pid);
      if (start === undefined) continue;
      if (!best || start < best.start || (start === best.start && pid < best.pid)) best = { pid, start };
    }
    if (!best) return undefined;
    const netnsPath = `/proc/${best.pid}/ns/net`;
    try {
      return { pid: best.pid, netnsPath, netnsInode: statSync(netnsPath).ino };
    } catch {
      return undefined; // it exited between the scan and now
    }
  }
}

/** Inode of the node proxy's own network namespace: a pod sharing it (hostNetwork) is never captured. */
export function ownNetnsInode(): number {
  return statSync('/proc/self/ns/net').ino;
}
