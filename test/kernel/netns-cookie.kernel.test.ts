// Netns cookies without SO_NETNS_COOKIE (Linux 5.10–5.13): the fallback (a cgroup/bind4 probe
// program on this process's cgroup, bpf/netns_cookie.c) is forced on this kernel and must give
// the same cookies as SO_NETNS_COOKIE — the values bpf_get_netns_cookie returns in the capture
// programs — for named namespaces, /proc/<pid>/ns/net, this process's own netns and sockets; it
// leaves no link on the cgroup, nothing bound, and unloads when asked. On a kernel without
// SO_NETNS_COOKIE the reference is the probe reached another way: through a socket made in that
// netns (SIOCGSKNS) instead of the netns's path (capture tests then check those cookies are the
// ones the capture programs see).
import { spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import * as net from 'node:net';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import {
  closeNetnsCookieProbe,
  closeNetnsWorkers,
  connectInNetns,
  fdOf,
  hasSockoptNetnsCookie,
  listenInNetns,
  netnsCookie,
  netnsCookieProbeIds,
  NativeError,
  ownCgroupDir,
  socketNetnsCookie,
} from '../../native';
import { kernelAtLeast } from '../support/kernel';
import { privilegedDescribe } from '../support/privileged';
import { expectReleased, Scratch, sh } from './support';

privilegedDescribe('kernel', 'netns cookies before Linux 5.14 (BPF probe fallback)', () => {
  const scratch = new Scratch('nm-kcookie');
  const namespaces: string[] = [];
  let sleeper: ReturnType<typeof spawn> | undefined;

  beforeAll(() => {
    for (const n of ['a', 'b', 'c']) namespaces.push(scratch.netns(n));
  });

  afterAll(async () => {
    const ids = netnsCookieProbeIds();
    try {
      if (sleeper?.pid && sleeper.exitCode === null) process.kill(sleeper.pid, 'SIGKILL');
      closeNetnsCookieProbe();
      closeNetnsWorkers();
    } finally {
      scratch.cleanup();
    }
    if (ids) await expectReleased([ids.progId], [ids.mapId]);
  });

  const sockopt = kernelAtLeast(5, 14);
  /** The cookie to compare with: SO_NETNS_COOKIE where the kernel has it, else the probe through a socket. */
  function reference(netnsPath: string): bigint {
    if (sockopt) return netnsCookie(netnsPath, 'sockopt');
    const fd = listenInNetns(netnsPath, { host: '127.0.0.1', port: 0 });
    try {
      return socketNetnsCookie(fd, 'bpf');
    } finally {
      closeSync(fd);
    }
  }

  it(`SO_NETNS_COOKIE is there exactly from Linux 5.14 (this kernel: ${sockopt ? 'has it, so the reference below is the real thing' : 'lacks it, so the fallback is the only path'})`, () => {
    expect(hasSockoptNetnsCookie()).toBe(sockopt);
    if (!sockopt) expect(() => netnsCookie('/proc/self/ns/net', 'sockopt')).toThrow(/ENOPROTOOPT|needs Linux >= 5.14/);
  });

  it('gives the reference cookie for every netns, and different ones for different namespaces', () => {
    const paths = [...namespaces, '/proc/self/ns/net'];
    const viaBpf = paths.map((p) => netnsCookie(p, 'bpf'));
    const viaReference = paths.map((p) => reference(p));
    expect(viaBpf).toEqual(viaReference);
    expect(new Set(viaBpf).size).toBe(paths.length);
    expect(viaBpf.every((c) => c > 0n)).toBe(true);
    // asking again gives the same answer
    expect(netnsCookie(namespaces[0] as string, 'bpf')).toBe(viaBpf[0]);
  });

  it('works for /proc/<pid>/ns/net of a process in the netns', async () => {
    const name = (namespaces[1] as string).split('/').pop() as string;
    sleeper = spawn('ip', ['netns', 'exec', name, 'sleep', '30'], { stdio: 'ignore' });
    // `ip netns exec` enters the netns, then execs sleep: wait for the exec
    const pid = sleeper.pid as number;
    for (let i = 0; i < 50 && !sh('cat', [`/proc/${pid}/cmdline`]).startsWith('sleep'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(netnsCookie(`/proc/${pid}/ns/net`, 'bpf')).toBe(reference(namespaces[1] as string));
  });

  it("socketNetnsCookie falls back through the socket's netns (SIOCGSKNS)", async () => {
    const ns = namespaces[2] as string;
    const srv = net.createServer((s) => s.destroy());
    srv.listen({ fd: listenInNetns(ns, { host: '127.0.0.1', port: 7300 }) });
    try {
      sh('ip', ['-n', ns.split('/').pop() as string, 'link', 'set', 'lo', 'up']);
      const s = await connectInNetns(ns, { host: '127.0.0.1', port: 7300 });
      try {
        expect(socketNetnsCookie(fdOf(s), 'bpf')).toBe(sockopt ? socketNetnsCookie(fdOf(s), 'sockopt') : netnsCookie(ns, 'bpf'));
        expect(socketNetnsCookie(fdOf(srv), 'bpf')).toBe(reference(ns));
      } finally {
        s.destroy();
      }
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });

  it("leaves no probe link on this process's cgroup: the probe address can be bound again afterwards", async () => {
    netnsCookie(namespaces[0] as string, 'bpf');
    const ids = netnsCookieProbeIds();
    expect(ids).toBeDefined();
    const attached = sh('bpftool', ['cgroup', 'show', ownCgroupDir(), 'effective'])
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0]);
    expect(attached).not.toContain(String(ids?.progId));
    // while attached, the probe program refuses binds to 127.255.90.1:1 (EPERM); now it is gone
    const srv = net.createServer();
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(1, '127.255.90.1', () => resolve());
    });
    await new Promise((r) => srv.close(r));
  });

  it('NODEMESH_NETNS_COOKIE=bpf makes the default method the fallback for the process', async () => {
    vi.resetModules();
    vi.stubEnv('NODEMESH_NETNS_COOKIE', 'bpf');
    try {
      const fresh = await import('../../native/netns-cookie.js');
      const before = fresh.netnsCookieProbeIds();
      expect(before).toBeUndefined();
      expect(fresh.readNetnsCookie(namespaces[0] as string)).toBe(reference(namespaces[0] as string));
      const used = fresh.netnsCookieProbeIds();
      expect(used).toBeDefined();
      fresh.closeNetnsCookieProbe();
      if (used) await expectReleased([used.progId], [used.mapId]);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('names the netns when it does not exist', () => {
    let err: unknown;
    try {
      netnsCookie('/run/netns/nm-kcookie-absent', 'bpf');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NativeError);
    expect(err).toMatchObject({ code: 'ENOENT', object: '/run/netns/nm-kcookie-absent' });
  });
});
