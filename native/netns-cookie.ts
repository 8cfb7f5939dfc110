// The cookie of a network namespace (what bpf_get_netns_cookie returns in the capture programs),
// read from user space. Fast path: SO_NETNS_COOKIE on a socket made inside the netns (Linux 5.14).
// Fallback for Linux 5.10–5.13, where that socket option is missing (ENOPROTOOPT): a tiny
// cgroup/bind4 program (bpf/netns_cookie.c) attached for a moment to this process's own cgroup
// records bpf_get_netns_cookie for a bind to a probe address, and the netns's worker thread binds
// a fresh socket there (see docs/capture.md, "netns cookies before 5.14").
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bpfObjectDir } from '../common/paths';
import { call, NativeError } from './binding';
import { decodeU64, encodeU64 } from './layout';
import type { BpfMap } from './map';
import { BpfObject, type BpfProgram } from './object';

/** How to read a netns cookie: 'sockopt' (SO_NETNS_COOKIE), 'bpf' (the probe program), 'auto'. */
export type NetnsCookieMethod = 'auto' | 'sockopt' | 'bpf';

export const NETNS_PROBE_OBJECT = join(bpfObjectDir, 'netns_cookie.o');
const PROBE_HOST = '127.255.90.1';
const PROBE_PORT = 1;

// Set once SO_NETNS_COOKIE answered ENOPROTOOPT; NODEMESH_NETNS_COOKIE=bpf forces the fallback
// for a whole process (to run the mesh the way it runs on 5.10 on a newer kernel).
let sockoptMissing = process.env.NODEMESH_NETNS_COOKIE === 'bpf';

interface Probe {
  program: BpfProgram;
  map: BpfMap;
}
let probe: Probe | undefined;

/** The netns cookie of the netns at netnsPath (/run/netns/<name>, /proc/<pid>/ns/net, …). */
export function readNetnsCookie(netnsPath: string, method: NetnsCookieMethod = 'auto'): bigint {
  if (method === 'bpf' || (method === 'auto' && sockoptMissing)) return viaProbe(netnsPath);
  try {
    return call((b) => b.netnsCookie(netnsPath));
  } catch (err) {
    if (method === 'auto' && err instanceof NativeError && err.code === 'ENOPROTOOPT') {
      sockoptMissing = true;
      return viaProbe(netnsPath);
    }
    throw err;
  }
}

/** Whether SO_NETNS_COOKIE exists on this kernel (false before Linux 5.14). */
export function hasSockoptNetnsCookie(): boolean {
  try {
    call((b) => b.netnsCookie('/proc/self/ns/net'));
    return true;
  } catch (err) {
    if (err instanceof NativeError && err.code === 'ENOPROTOOPT') return false;
    throw err;
  }
}

/** Unloads the probe program and map (loaded on first use of the fallback). */
export function closeNetnsCookieProbe(): void {
  probe?.program.close();
  probe?.map.close();
  probe = undefined;
}

/** The ids of the loaded probe program and map, while loaded (tests check they are released). */
export function netnsCookieProbeIds(): { progId: number; mapId: number } | undefined {
  return probe ? { progId: probe.program.info().id, mapId: probe.map.info.id } : undefined;
}

/** The cgroup v2 directory this process is in (from /proc/self/cgroup and /proc/mounts). */
export function ownCgroupDir(): string {
  const mount = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .find((f) => f[2] === 'cgroup2')?.[1];
  if (!mount) throw new Error('netns cookie via BPF: no cgroup2 mount in /proc/mounts (mount cgroup v2, e.g. at /sys/fs/cgroup)');
  const line = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  if (!line) throw new Error('netns cookie via BPF: this process has no cgroup v2 entry in /proc/self/cgroup');
  return join(mount, line.slice(3));
}

function loadProbe(): Probe {
  if (probe) return probe;
  const obj = BpfObject.open(NETNS_PROBE_OBJECT);
  try {
    probe = { program: obj.program('nm_netns_probe4'), map: obj.map('nm_netns_probe') };
  } finally {
    obj.close();
  }
  return probe;
}

/**
 * The netns cookie of the netns an open fd refers to (from SIOCGSKNS), always through the BPF
 * probe. The probe socket comes from a one-off thread, not from the netns's shared worker: a
 * worker keyed by a transient /proc/self/fd path would outlive the fd, and releasing it would stop
 * the worker the netns's connects share.
 */
export function readNetnsCookieOfFd(nsfd: number): bigint {
  return viaProbe(`netns fd ${nsfd}`, () => call((b) => b.bindProbeInNetnsFd(nsfd, PROBE_HOST, PROBE_PORT)));
}

function viaProbe(netnsPath: string, bindProbe = (): bigint => call((b) => b.bindProbeInNetns(netnsPath, PROBE_HOST, PROBE_PORT))): bigint {
  const p = loadProbe();
  const cgroup = ownCgroupDir();
  const link = p.program.attachCgroup(cgroup, 'cgroup_inet4_bind');
  let socketCookie: bigint;
  try {
    socketCookie = bindProbe();
  } finally {
    link.detach();
  }
  const key = encodeU64(socketCookie);
  const value = p.map.lookup(key);
  if (!value) {
    throw new Error(
      `netns cookie of ${netnsPath} via BPF: the probe program on cgroup ${cgroup} did not see the probe bind ` +
        `(a cgroup/bind4 program attached there without BPF_F_ALLOW_MULTI may override it)`,
    );
  }
  p.map.delete(key);
  return decodeU64(value);
}
