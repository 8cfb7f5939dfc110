// Kernel feature probes: which program types, map types and helpers capture needs, checked
// against the running kernel, so `nodemesh doctor` and node proxy start-up can name every gap.
import { call, NativeError } from './binding';
import { hasSockoptNetnsCookie, readNetnsCookie } from './netns-cookie';

/** Helper ids from linux/bpf.h (enum bpf_func_id) that capture uses. */
export const Helpers = {
  map_lookup_elem: 1,
  map_update_elem: 2,
  get_socket_cookie: 46,
  sk_release: 86,
  get_netns_cookie: 122,
  sk_assign: 124,
} as const;
export type HelperName = keyof typeof Helpers;

export function probeProgramType(type: string): boolean {
  return call((b) => b.probeProgramType(type));
}

export function probeMapType(type: string): boolean {
  return call((b) => b.probeMapType(type));
}

export function probeHelper(programType: string, helper: HelperName): boolean {
  return call((b) => b.probeHelper(programType, Helpers[helper]));
}

export function libbpfVersion(): string {
  return call((b) => b.libbpfVersion());
}

export interface Feature {
  what: string;
  /** why capture needs it */
  why: string;
  ok: boolean;
}

/** Everything the capture programs (bpf/*.c) need from the kernel. */
export function probeCaptureFeatures(): Feature[] {
  const f = (what: string, why: string, probe: () => boolean): Feature => ({ what, why, ok: probe() });
  return [
    f('program type cgroup_sock_addr', 'outbound capture (connect4/connect6)', () => probeProgramType('cgroup_sock_addr')),
    f('program type sock_ops', 'recording the original destination (sockops)', () => probeProgramType('sock_ops')),
    f('program type sk_lookup (Linux 5.9)', 'inbound capture', () => probeProgramType('sk_lookup')),
    f('map type sockhash', 'inbound listener registry', () => probeMapType('sockhash')),
    f('map type lru_hash', 'original destinations', () => probeMapType('lru_hash')),
    f('map type lpm_trie', 'excluded CIDRs', () => probeMapType('lpm_trie')),
    f('helper get_netns_cookie in cgroup_sock_addr (Linux 5.7)', 'per-workload config lookup', () => probeHelper('cgroup_sock_addr', 'get_netns_cookie')),
    f('helper get_socket_cookie in sock_ops', 're-keying original destinations', () => probeHelper('sock_ops', 'get_socket_cookie')),
    f('helper sk_assign in sk_lookup', 'steering to the inbound listener', () => probeHelper('sk_lookup', 'sk_assign')),
    f(
      hasSockoptNetnsCookie()
        ? 'netns cookie from user space: socket option SO_NETNS_COOKIE (Linux 5.14)'
        : 'netns cookie from user space: cgroup/bind4 probe program (bpf/build/netns_cookie.o, Linux 5.7; no SO_NETNS_COOKIE before 5.14)',
      'naming a workload by its netns cookie',
      () => {
        try {
          return readNetnsCookie('/proc/self/ns/net') > 0n;
        } catch {
          return false; // e.g. the probe object is not built, or the probe program may not attach
        }
      },
    ),
    f('bpf_link for cgroups and netns (Linux 5.8)', 'attachments that can be pinned', () => probeLinks()),
  ];
}

/** bpf_link_create exists (it answers EBADF for bad fds rather than EINVAL for an unknown command). */
function probeLinks(): boolean {
  try {
    call((b) => b.linkCreate(-1, '/proc/self/ns/net', 'sk_lookup', 'probe'));
    return true;
  } catch (err) {
    return !(err instanceof NativeError && err.code === 'EINVAL');
  }
}
