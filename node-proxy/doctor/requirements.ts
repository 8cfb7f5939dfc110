// What the node proxy's capture needs from the kernel, and since which Linux version each piece
// exists, so that `nodemesh doctor` and the node proxy's start-up check can name what is missing
// and how new a kernel would provide it. The floor for the whole mesh is Linux 5.10.

export type RequirementKind = 'program-type' | 'attach-type' | 'helper' | 'map-type' | 'link' | 'socket-option' | 'filesystem' | 'btf';

export interface Requirement {
  readonly id: string;
  readonly kind: RequirementKind;
  /** What the probe checks, in the kernel's words. */
  readonly what: string;
  /** Why nodemesh needs it. */
  readonly usedFor: string;
  /** The first Linux release that has it ("5.9"). */
  readonly minKernel: string;
  /** Not needed for capture: what the node proxy does without it (it starts all the same). */
  readonly optional?: { readonly without: string };
}

export const KERNEL_FLOOR = '5.10';

// Keep in step with the programs in bpf/: a program type, attach type or helper used there belongs
// here, with the release that introduced it.
export const CAPTURE_REQUIREMENTS: readonly Requirement[] = [
  {
    id: 'fs.cgroup2',
    kind: 'filesystem',
    what: 'cgroup v2 mounted (cgroup2 in /proc/mounts)',
    usedFor: 'attaching capture to each workload cgroup',
    minKernel: '4.5',
  },
  {
    id: 'fs.bpffs',
    kind: 'filesystem',
    what: 'bpffs mounted at /sys/fs/bpf (or mountable)',
    usedFor: 'pinning programs, maps and links so capture survives a node proxy restart',
    minKernel: '4.4',
  },
  { id: 'btf.vmlinux', kind: 'btf', what: 'kernel BTF at /sys/kernel/btf/vmlinux', usedFor: 'type information for the BPF programs (CO-RE)', minKernel: '5.4' },
  {
    id: 'prog.cgroup_sock_addr',
    kind: 'program-type',
    what: 'BPF_PROG_TYPE_CGROUP_SOCK_ADDR',
    usedFor: 'outbound capture (connect4/connect6)',
    minKernel: '4.17',
  },
  {
    id: 'prog.sk_lookup',
    kind: 'program-type',
    what: 'BPF_PROG_TYPE_SK_LOOKUP',
    usedFor: 'steering inbound connections to the 15006 listener',
    minKernel: '5.9',
  },
  {
    id: 'prog.sock_ops',
    kind: 'program-type',
    what: 'BPF_PROG_TYPE_SOCK_OPS',
    usedFor: 'recording the original destination of captured connections',
    minKernel: '4.13',
  },
  {
    id: 'attach.cgroup_inet4_connect',
    kind: 'attach-type',
    what: 'BPF_CGROUP_INET4_CONNECT',
    usedFor: 'redirecting IPv4 connect() to 15001',
    minKernel: '4.17',
  },
  {
    id: 'attach.cgroup_inet6_connect',
    kind: 'attach-type',
    what: 'BPF_CGROUP_INET6_CONNECT',
    usedFor: 'redirecting IPv6 connect() to 15001',
    minKernel: '4.17',
  },
  { id: 'attach.cgroup_sock_ops', kind: 'attach-type', what: 'BPF_CGROUP_SOCK_OPS', usedFor: 'sock_ops on the workload cgroup', minKernel: '4.13' },
  { id: 'attach.sk_lookup', kind: 'attach-type', what: 'BPF_SK_LOOKUP (netns link)', usedFor: 'sk_lookup on the workload netns', minKernel: '5.9' },
  {
    id: 'link.cgroup',
    kind: 'link',
    what: 'bpf_link for cgroup programs (BPF_LINK_CREATE)',
    usedFor: 'pinnable cgroup attachments that survive a restart',
    minKernel: '5.7',
  },
  {
    id: 'helper.get_socket_cookie.sock_addr',
    kind: 'helper',
    what: 'bpf_get_socket_cookie in cgroup_sock_addr',
    usedFor: 'keying the original destination by socket',
    minKernel: '4.20',
  },
  {
    id: 'helper.get_socket_cookie.sock_ops',
    kind: 'helper',
    what: 'bpf_get_socket_cookie in sock_ops',
    usedFor: 'joining the connect() record to the established socket',
    minKernel: '4.20',
  },
  {
    id: 'helper.get_netns_cookie.sock_addr',
    kind: 'helper',
    what: 'bpf_get_netns_cookie in cgroup_sock_addr',
    usedFor: 'telling workload netns apart',
    minKernel: '5.7',
  },
  { id: 'helper.sk_assign.sk_lookup', kind: 'helper', what: 'bpf_sk_assign in sk_lookup', usedFor: 'handing inbound connections to 15006', minKernel: '5.9' },
  // SO_NETNS_COOKIE (5.14) is the fast path; before it the addon reads the cookie through a
  // cgroup/bind4 probe program (5.7, native/netns-cookie.ts): either one will do.
  {
    id: 'netns_cookie.user_space',
    kind: 'socket-option',
    what: 'netns cookie from user space: SO_NETNS_COOKIE (5.14) or the cgroup/bind4 probe (5.7)',
    usedFor: 'the node proxy learning the netns cookie the programs key workloads by',
    minKernel: '5.7',
  },
  { id: 'map.hash', kind: 'map-type', what: 'BPF_MAP_TYPE_HASH', usedFor: 'enrolment and original-destination tables', minKernel: '3.19' },
  { id: 'map.lru_hash', kind: 'map-type', what: 'BPF_MAP_TYPE_LRU_HASH', usedFor: 'original destinations of short-lived connections', minKernel: '4.10' },
  { id: 'map.lpm_trie', kind: 'map-type', what: 'BPF_MAP_TYPE_LPM_TRIE', usedFor: 'excluded CIDRs', minKernel: '4.11' },
  { id: 'map.sockhash', kind: 'map-type', what: 'BPF_MAP_TYPE_SOCKHASH', usedFor: 'the 15006 listeners that sk_lookup assigns to', minKernel: '4.18' },
  // The same-node fast path (bpf/sk_msg.c): optional, the kernel splice does without it.
  {
    id: 'prog.sk_msg',
    kind: 'program-type',
    what: 'BPF_PROG_TYPE_SK_MSG (sockmap sk_msg redirect)',
    usedFor: 'same-node fast path: app socket to app socket',
    minKernel: '4.17',
    optional: { without: 'same-node connections are spliced by the node proxy (a second TCP connection)' },
  },
  {
    id: 'helper.get_netns_cookie.sk_msg',
    kind: 'helper',
    what: 'bpf_get_netns_cookie in sk_msg',
    usedFor: 'same-node fast path: telling the netns of app sockets apart',
    minKernel: '5.15',
    optional: { without: 'same-node connections are spliced by the node proxy (a second TCP connection)' },
  },
];

/** Compares dotted release numbers ("5.10" > "5.9"); ignores anything after the numbers. */
export function compareKernel(a: string, b: string): number {
  const parse = (v: string): number[] => (/^(\d+(?:\.\d+)*)/.exec(v)?.[1] ?? '0').split('.').map(Number);
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** How the node proxy reads netns cookies on this kernel. */
export type NetnsCookiePath = 'sockopt' | 'bpf';

export interface NetnsCookieProbes {
  /** SO_NETNS_COOKIE answered: true, or why not ("ENOPROTOOPT") */
  readonly sockopt: true | string;
  /** the cgroup/bind4 probe program gave a cookie: true, or why not */
  readonly bindProbe: true | string;
  /** NODEMESH_NETNS_COOKIE=bpf: the fallback is forced for the whole process */
  readonly forceBpf: boolean;
}

/**
 * The netns cookie requirement is met when either path works; the detail names the path the
 * node proxy will use (the one netnsCookie's 'auto' picks) or, when neither works, why each failed.
 */
export function netnsCookieOutcome(p: NetnsCookieProbes): { present: boolean; detail: string; path?: NetnsCookiePath } {
  const viaProbe = 'via the cgroup/bind4 probe program (bpf/build/netns_cookie.o)';
  if (p.forceBpf) {
    return p.bindProbe === true
      ? { present: true, path: 'bpf', detail: `${viaProbe}, forced by NODEMESH_NETNS_COOKIE=bpf` }
      : { present: false, detail: `NODEMESH_NETNS_COOKIE=bpf forces the cgroup/bind4 probe, which failed: ${p.bindProbe}` };
  }
  if (p.sockopt === true) return { present: true, path: 'sockopt', detail: 'via SO_NETNS_COOKIE' };
  if (p.bindProbe === true) return { present: true, path: 'bpf', detail: `${viaProbe}; SO_NETNS_COOKIE: ${p.sockopt}` };
  return { present: false, detail: `SO_NETNS_COOKIE: ${p.sockopt}; cgroup/bind4 probe: ${p.bindProbe}` };
}
