// Probes the running kernel for every capture requirement: mounts and BTF from the filesystem,
// program/map types and helpers through libbpf's probes, and attach types and bpf_links by really
// loading bpf/build/capture.o and attaching it to a throwaway cgroup and netns (removed again).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { netnsCookie } from '../../native/netns';
import { closeNetnsCookieProbe } from '../../native/netns-cookie';
import { BpfObject, unpin } from '../../native/object';
import { probeHelper, probeMapType, probeProgramType, type HelperName } from '../../native/probe';
import { CAPTURE_OBJECT } from '../capture/bpf-dataplane';
import { bpffsMounted, findCgroup2, readMounts } from './mounts';
import { buildReport, type DoctorReport, type ProbeOutcome } from './report';
import { CAPTURE_REQUIREMENTS, netnsCookieOutcome } from './requirements';

const PROG_TYPES: Record<string, string> = {
  'prog.cgroup_sock_addr': 'cgroup_sock_addr',
  'prog.sk_lookup': 'sk_lookup',
  'prog.sock_ops': 'sock_ops',
  'prog.sk_msg': 'sk_msg',
};
const MAP_TYPES: Record<string, string> = {
  'map.hash': 'hash',
  'map.lru_hash': 'lru_hash',
  'map.lpm_trie': 'lpm_trie',
  'map.sockhash': 'sockhash',
};
const HELPERS: Record<string, [string, HelperName]> = {
  'helper.get_socket_cookie.sock_addr': ['cgroup_sock_addr', 'get_socket_cookie'],
  'helper.get_socket_cookie.sock_ops': ['sock_ops', 'get_socket_cookie'],
  'helper.get_netns_cookie.sock_addr': ['cgroup_sock_addr', 'get_netns_cookie'],
  'helper.sk_assign.sk_lookup': ['sk_lookup', 'sk_assign'],
  'helper.get_netns_cookie.sk_msg': ['sk_msg', 'get_netns_cookie'],
};
const ATTACH: Record<string, [program: string, attachType: string, target: 'cgroup' | 'netns']> = {
  'attach.cgroup_inet4_connect': ['nm_connect4', 'cgroup_inet4_connect', 'cgroup'],
  'attach.cgroup_inet6_connect': ['nm_connect6', 'cgroup_inet6_connect', 'cgroup'],
  'attach.cgroup_sock_ops': ['nm_sockops', 'cgroup_sock_ops', 'cgroup'],
  'attach.sk_lookup': ['nm_sk_lookup', 'sk_lookup', 'netns'],
};

function guard(fn: () => boolean): ProbeOutcome {
  try {
    return { present: fn() };
  } catch (err) {
    return { present: false, detail: (err as { code?: string }).code ?? (err as Error).message };
  }
}

/** Loads the capture object and attaches every program to a throwaway cgroup and netns. */
function probeAttach(out: Map<string, ProbeOutcome>, cgroup2: string | undefined, bpffsOk: boolean): void {
  const skipAll = (why: string): void => {
    for (const id of [...Object.keys(ATTACH), 'link.cgroup']) out.set(id, { present: false, detail: why });
  };
  if (!cgroup2) return skipAll('no cgroup v2 mount to attach to');
  if (!bpffsOk) return skipAll('no bpffs for the probe pins');
  if (!existsSync(CAPTURE_OBJECT)) return skipAll(`${CAPTURE_OBJECT} is not built (bash scripts/setup.sh)`);
  const tag = `nm-doctor-${process.pid}`;
  // bpffs refuses names with a '.', so no hidden directory here
  const pinRoot = join('/sys/fs/bpf/nodemesh', tag);
  const cg = join(cgroup2, tag);
  let obj: BpfObject | undefined;
  let netnsMade = false;
  try {
    obj = BpfObject.open(CAPTURE_OBJECT, { pinRoot });
    mkdirSync(cg);
    execFileSync('ip', ['netns', 'add', tag], { stdio: 'ignore' });
    netnsMade = true;
    for (const [id, [program, attachType, target]] of Object.entries(ATTACH)) {
      const outcome = guard(() => {
        const prog = obj!.program(program);
        try {
          const link = target === 'cgroup' ? prog.attachCgroup(cg, attachType) : prog.attachNetns(`/run/netns/${tag}`, attachType);
          link.detach();
          return true;
        } finally {
          prog.close();
        }
      });
      out.set(id, outcome);
      if (target === 'cgroup' && !out.has('link.cgroup')) out.set('link.cgroup', outcome);
    }
  } catch (err) {
    skipAll(`capture object did not load: ${(err as Error).message.split('\n')[0]}`);
  } finally {
    obj?.close();
    if (netnsMade) execFileSync('ip', ['netns', 'del', tag], { stdio: 'ignore' });
    if (existsSync(cg)) rmdirSync(cg);
    try {
      unpin(pinRoot);
    } catch {
      // nothing was pinned
    }
  }
}

/** Reads our own netns's cookie one way: true, or why it failed. */
function tryCookie(method: 'sockopt' | 'bpf', unloadAfter = false): true | string {
  try {
    return netnsCookie('/proc/self/ns/net', method) > 0n ? true : 'cookie 0';
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).message.split('\n')[0];
  } finally {
    // the probe program is loaded on first use; the doctor leaves nothing loaded (a node proxy
    // that needs it loads it again when it reads its first cookie)
    if (unloadAfter) closeNetnsCookieProbe();
  }
}

export function probeKernel(): DoctorReport {
  const out = new Map<string, ProbeOutcome>();
  const mounts = readMounts();
  const cgroup2 = findCgroup2(mounts);
  out.set('fs.cgroup2', cgroup2 ? { present: true, detail: cgroup2 } : { present: false, detail: 'no cgroup2 line in /proc/mounts' });
  const bpffsOk = bpffsMounted(mounts);
  out.set('fs.bpffs', bpffsOk ? { present: true } : { present: false, detail: "not mounted; 'mount -t bpf bpf /sys/fs/bpf'" });
  out.set('btf.vmlinux', { present: existsSync('/sys/kernel/btf/vmlinux') });
  for (const [id, t] of Object.entries(PROG_TYPES))
    out.set(
      id,
      guard(() => probeProgramType(t)),
    );
  for (const [id, t] of Object.entries(MAP_TYPES))
    out.set(
      id,
      guard(() => probeMapType(t)),
    );
  for (const [id, [t, h]] of Object.entries(HELPERS))
    out.set(
      id,
      guard(() => probeHelper(t, h)),
    );
  const cookie = netnsCookieOutcome({
    sockopt: tryCookie('sockopt'),
    bindProbe: tryCookie('bpf', true),
    forceBpf: process.env.NODEMESH_NETNS_COOKIE === 'bpf',
  });
  out.set('netns_cookie.user_space', { present: cookie.present, detail: cookie.detail });
  probeAttach(out, cgroup2, bpffsOk);
  return buildReport(release(), CAPTURE_REQUIREMENTS, out);
}
