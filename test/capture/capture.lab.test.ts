// Capture in the node proxy, end to end in a lab of our own ('nmcapt'): node1's proxy enrols
// pod1-1 (with exclusions) and leaves pod1-2 out; servers run in pod2-1 / pod1-1, clients inside
// pods (their netns and cgroup, so capture applies to them exactly as to an app).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { LabTopology } from '../../lab/state';
import { connectInNetns } from '../../native/netns';
import { privilegedDescribe } from '../support/privileged';
import { cgroupPrograms } from '../support/bpftool';
import {
  adminJson,
  closeServer,
  downLab,
  echoServer,
  holdClient,
  runClient,
  startProxy,
  stopProxy,
  teardown,
  upLab,
  waitFor,
  waitReady,
  writeSelection,
  type ProxyProc,
  type Seen,
} from './harness';
import { scaled } from '../support/speed';

const LAB = 'nmcapt';
const VIP = '10.96.0.12';
const MiB = 1024 * 1024;

interface ConnView {
  direction: string;
  workload: string;
  source: { address: string; port: number };
  originalDestination: { address: string; port: number };
  bytesSent: number;
  bytesReceived: number;
}

privilegedDescribe('lab', 'node proxy capture (passthrough)', () => {
  let topo: LabTopology;
  let dir: string;
  let selection: string;
  let proxy: ProxyProc | undefined;
  let remote: Awaited<ReturnType<typeof echoServer>> | undefined; // pod2-1:8080 (+ VIP), 8081, pod2-2:8080
  let remoteExcl: Awaited<ReturnType<typeof echoServer>> | undefined;
  let other: Awaited<ReturnType<typeof echoServer>> | undefined;
  let app: Awaited<ReturnType<typeof echoServer>> | undefined; // the app in pod1-1 on 9090 and 9091
  let appExcl: Awaited<ReturnType<typeof echoServer>> | undefined;
  const pod = (name: string) => topo.pods.find((p) => p.name === name)!;
  const node = (name: string) => topo.nodes.find((n) => n.name === name)!;
  const baseSelection = {
    workloads: {
      'pod1-2': { mode: 'none' },
      'pod1-1': { excludedOutboundPorts: [8081], excludedInboundPorts: [9091], excludedCidrs: ['10.200.2.3/32'] },
    },
  };
  const seenFrom = (seen: Seen[], n: number) => seen.slice(n);
  /** Threads of the node proxy process that are inside the netns at netnsPath. */
  const proxyThreadsIn = (netnsPath: string): number[] => {
    const pid = proxy!.child.pid!;
    const want = `net:[${statSync(netnsPath).ino}]`;
    return readdirSync(`/proc/${pid}/task`)
      .filter((tid) => {
        try {
          return readlinkSync(`/proc/${pid}/task/${tid}/ns/net`) === want;
        } catch {
          return false; // the thread exited meanwhile
        }
      })
      .map(Number);
  };

  beforeAll(async () => {
    await downLab(LAB); // whatever a failed earlier run left
    topo = await upLab(LAB);
    dir = mkdtempSync(join(tmpdir(), 'nm-cap-'));
    selection = join(dir, 'capture.json');
    writeSelection(selection, baseSelection);
    // The made-up VIP lives on pod2-1: node1 routes it to node2, node2 to pod2-1.
    execFileSync('ip', ['-n', node('node1').netns, 'route', 'add', `${VIP}/32`, 'via', node('node2').underlayIp]);
    execFileSync('ip', ['-n', node('node2').netns, 'route', 'add', `${VIP}/32`, 'via', pod('pod2-1').ip]);
    execFileSync('ip', ['-n', pod('pod2-1').netns, 'addr', 'add', `${VIP}/32`, 'dev', 'lo']);
    remote = await echoServer(pod('pod2-1').netnsPath, 8080);
    remoteExcl = await echoServer(pod('pod2-1').netnsPath, 8081);
    other = await echoServer(pod('pod2-2').netnsPath, 8080);
    app = await echoServer(pod('pod1-1').netnsPath, 9090);
    appExcl = await echoServer(pod('pod1-1').netnsPath, 9091);
    proxy = startProxy(topo, 'node1', selection);
    await waitReady(topo, 'node1', proxy);
  });

  afterAll(async () => {
    await stopProxy(proxy, 'SIGKILL');
    for (const s of [remote, remoteExcl, other, app, appExcl]) await closeServer(s);
    if (topo) await teardown(topo, 'node1').catch(() => undefined);
    await downLab(LAB);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('admin lists pod1-1 (not pod1-2) with its listeners', async () => {
    const wls = await adminJson<Array<{ key: string; listeners: string[]; addresses: string[] }>>(topo, 'node1', '/workloads');
    expect(wls.map((w) => w.key)).toEqual(['default/pod1-1']);
    expect(wls[0].listeners).toEqual(expect.arrayContaining(['127.0.0.1:15001', '[::]:15006']));
    expect(wls[0].addresses).toEqual([pod('pod1-1').ip]);
  });

  it('captures pod1-1 -> other pod IP and -> a made-up VIP with the right original destination and source workload', async () => {
    for (const dst of [pod('pod2-1').ip, VIP]) {
      const before = remote!.seen.length;
      const held = await holdClient(topo, 'pod1-1', dst, 8080, 1500);
      try {
        expect(held.peer).toBe('127.0.0.1:15001'); // the kernel sent the app's connect to the proxy
        const conns = await waitFor('the connection in admin', async () => {
          const c = await adminJson<ConnView[]>(topo, 'node1', '/connections');
          return c.length ? c : undefined;
        });
        expect(conns).toHaveLength(1); // the proxy's own upstream connection was not captured again
        expect(conns[0]).toMatchObject({ direction: 'outbound', workload: 'default/pod1-1', originalDestination: { address: dst, port: 8080 } });
      } finally {
        await new Promise((r) => held.child.once('exit', r));
      }
      const seen = await waitFor('server to see it', async () => (remote!.seen.length > before ? remote!.seen[before] : undefined));
      // the upstream leaves from pod1-1's netns: the server sees the pod's address, and the address it dialled
      expect(seen.remote).toBe(pod('pod1-1').ip);
      expect(seen.local).toBe(dst);
    }
  });

  it('passes bytes through intact both ways, 0 B to 16 MiB', async () => {
    for (const size of [0, 1, 65_536, MiB + 7, 16 * MiB]) {
      const before = remote!.seen.length;
      const [r] = await runClient(topo, 'pod1-1', pod('pod2-1').ip, 8080, size);
      expect(r).toMatchObject({ ok: true, peer: '127.0.0.1:15001', sent: size, received: size });
      expect(r.receivedSha).toBe(r.sentSha);
      const seen = await waitFor('server record', async () => (remote!.seen.length > before ? remote!.seen[before] : undefined));
      expect(seen).toMatchObject({ bytes: size, sha256: r.sentSha });
    }
  });

  it('keeps 100 concurrent captured connections apart', async () => {
    const before = remote!.seen.length;
    const results = await runClient(topo, 'pod1-1', pod('pod2-1').ip, 8080, 200_000, 100);
    expect(results.filter((r) => r.ok)).toHaveLength(100);
    for (const r of results) {
      expect(r.peer).toBe('127.0.0.1:15001');
      expect(r.receivedSha).toBe(r.sentSha);
    }
    await waitFor('all 100 at the server', async () => (remote!.seen.length >= before + 100 ? true : undefined));
    const serverShas = new Set(seenFrom(remote!.seen, before).map((s) => s.sha256));
    for (const r of results) expect(serverShas.has(r.sentSha!)).toBe(true);
    const stats = await adminJson<{ connections: { open: number } }>(topo, 'node1', '/stats');
    expect(stats.connections.open).toBe(0);
  });

  it('does not capture a pod that is not enrolled, an excluded port or an excluded CIDR', async () => {
    const [notEnrolled] = await runClient(topo, 'pod1-2', pod('pod2-1').ip, 8080, 1000);
    expect(notEnrolled).toMatchObject({ ok: true, peer: `${pod('pod2-1').ip}:8080`, received: 1000 });
    const [exclPort] = await runClient(topo, 'pod1-1', pod('pod2-1').ip, 8081, 1000);
    expect(exclPort).toMatchObject({ ok: true, peer: `${pod('pod2-1').ip}:8081`, received: 1000 });
    const [exclCidr] = await runClient(topo, 'pod1-1', pod('pod2-2').ip, 8080, 1000);
    expect(exclCidr).toMatchObject({ ok: true, peer: `${pod('pod2-2').ip}:8080`, received: 1000 });
  });

  it('steers inbound plaintext from another pod through the proxy, which sees the original port', async () => {
    // pod2-1 is not enrolled (no proxy on node2): it dials pod1-1's app directly.
    const before = app!.seen.length;
    const s = await connectInNetns(pod('pod2-1').netnsPath, { host: pod('pod1-1').ip, port: 9090 });
    try {
      const conns = await waitFor('the inbound connection in admin', async () => {
        const c = await adminJson<ConnView[]>(topo, 'node1', '/connections');
        return c.length ? c : undefined;
      });
      expect(conns).toHaveLength(1);
      expect(conns[0]).toMatchObject({
        direction: 'inbound',
        workload: 'default/pod1-1',
        source: { address: pod('pod2-1').ip },
        originalDestination: { address: pod('pod1-1').ip, port: 9090 },
      });
      const echoed = new Promise<string>((resolve) => {
        let t = '';
        s.on('data', (d: Buffer) => (t += d.toString()));
        s.on('end', () => resolve(t));
      });
      s.end('ping');
      expect(await echoed).toBe('ping');
    } finally {
      s.destroy();
    }
    const seen = await waitFor('app record', async () => (app!.seen.length > before ? app!.seen[before] : undefined));
    // the app is reached by the proxy from inside pod1-1's netns
    expect(seen).toMatchObject({ local: pod('pod1-1').ip, localPort: 9090, remote: pod('pod1-1').ip, bytes: 4 });

    // an excluded inbound port reaches the app directly, with the client's own address
    const b2 = appExcl!.seen.length;
    const s2 = await connectInNetns(pod('pod2-1').netnsPath, { host: pod('pod1-1').ip, port: 9091 });
    s2.end('x');
    s2.resume();
    await new Promise((r) => s2.once('close', r));
    const seen2 = await waitFor('excluded app record', async () => (appExcl!.seen.length > b2 ? appExcl!.seen[b2] : undefined));
    expect(seen2.remote).toBe(pod('pod2-1').ip);

    // dialling the inbound listener itself is refused instead of looping back into the proxy
    // (the reset can arrive before the connect completes, then the connect itself fails)
    const outcome = await connectInNetns(pod('pod2-1').netnsPath, { host: pod('pod1-1').ip, port: 15006 }).then(
      (s3) =>
        new Promise<string>((resolve) => {
          s3.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
          s3.on('close', () => resolve('closed'));
          s3.resume();
          s3.write('hello');
        }),
      (e: NodeJS.ErrnoException) => e.code ?? e.message,
    );
    expect(['ECONNRESET', 'closed']).toContain(outcome);
    expect((await adminJson<{ connections: { open: number } }>(topo, 'node1', '/stats')).connections.open).toBe(0);
  });

  it('unenrolling restores the direct path and leaves no proxy thread in the pod netns; enrolling again captures again', async () => {
    // the spawned process is the node proxy itself (nsenter and sh exec it)
    expect(readFileSync(`/proc/${proxy!.child.pid!}/cmdline`, 'utf8')).toContain('node-proxy');
    // a captured connection just now: the proxy's worker thread for pod1-1's netns is up (idle timeout 5 s)
    const [warm] = await runClient(topo, 'pod1-1', pod('pod2-1').ip, 8080, 10);
    expect(warm).toMatchObject({ ok: true, peer: '127.0.0.1:15001' });
    expect(proxyThreadsIn(pod('pod1-1').netnsPath).length).toBeGreaterThan(0);
    writeSelection(selection, { workloads: { ...baseSelection.workloads, 'pod1-1': { mode: 'none' } } });
    await waitFor('pod1-1 unenrolled', async () => ((await adminJson<unknown[]>(topo, 'node1', '/workloads')).length === 0 ? true : undefined));
    // released at unenrol, well before the worker's own idle timeout would end it
    await expect.poll(() => proxyThreadsIn(pod('pod1-1').netnsPath), { timeout: 1000, interval: 50 }).toEqual([]);
    const [direct] = await runClient(topo, 'pod1-1', pod('pod2-1').ip, 8080, 1000);
    expect(direct).toMatchObject({ ok: true, peer: `${pod('pod2-1').ip}:8080`, received: 1000 });
    expect(existsSync(join(node('node1').bpffsDir, 'workloads', 'default_pod1-1'))).toBe(false);

    writeSelection(selection, baseSelection);
    await waitFor('pod1-1 enrolled again', async () => ((await adminJson<unknown[]>(topo, 'node1', '/workloads')).length === 1 ? true : undefined));
    const [captured] = await runClient(topo, 'pod1-1', pod('pod2-1').ip, 8080, 1000);
    expect(captured).toMatchObject({ ok: true, peer: '127.0.0.1:15001', received: 1000 });
  });

  it('with the node proxy killed, captured connects fail fast and nothing leaks; a restart adopts without duplicates', async () => {
    const cg = pod('pod1-1').cgroup;
    const attachedBefore = cgroupPrograms(cg);
    await stopProxy(proxy, 'SIGKILL');
    const before = remote!.seen.length;
    const [r] = await runClient(topo, 'pod1-1', pod('pod2-1').ip, 8080, 1000);
    expect(r.ok).toBe(false);
    expect(r.error).toBe('ECONNREFUSED');
    expect(r.ms!).toBeLessThan(1000);
    // inbound without a proxy is dropped (sk_lookup finds no listener), never delivered around it
    await expect(connectInNetns(pod('pod2-1').netnsPath, { host: pod('pod1-1').ip, port: 9090, timeoutMs: 1000 })).rejects.toThrow(/ETIMEDOUT|ECONNREFUSED/);
    expect(remote!.seen.length).toBe(before);

    proxy = startProxy(topo, 'node1', selection);
    await waitReady(topo, 'node1', proxy);
    // the node proxy writes its log in the background, within ~10 ms (common/log.ts)
    await waitFor('the restarted node proxy to log its adoption', async () => (proxy?.log().includes('adopted pinned enrolment') ? true : undefined), 5000);
    expect(cgroupPrograms(cg)).toBe(attachedBefore);
    const links = cgroupPrograms(cg)
      .split('\n')
      .filter((l) => /nm_/.test(l));
    expect(links).toHaveLength(3); // connect4, connect6, sockops — once each
    const [again] = await runClient(topo, 'pod1-1', pod('pod2-1').ip, 8080, 1000);
    expect(again).toMatchObject({ ok: true, peer: '127.0.0.1:15001', received: 1000 });
  });

  it('after teardown the kernel holds nothing of ours', async () => {
    const pinRoot = node('node1').bpffsDir;
    const mapIds = ['nm_workloads', 'nm_orig_dst', 'nm_inbound'].map(
      (m) => (JSON.parse(execFileSync('bpftool', ['-j', 'map', 'show', 'pinned', join(pinRoot, m)], { encoding: 'utf8' })) as { id: number }).id,
    );
    const linkIds = ['connect4', 'sk_lookup'].map(
      (l) =>
        JSON.parse(execFileSync('bpftool', ['-j', 'link', 'show', 'pinned', join(pinRoot, 'workloads', 'default_pod1-1', l)], { encoding: 'utf8' })) as {
          id: number;
          prog_id: number;
        },
    );
    await stopProxy(proxy);
    const t = await teardown(topo, 'node1');
    expect(t.code, t.out).toBe(0);
    expect(existsSync(pinRoot)).toBe(false);
    expect(cgroupPrograms(pod('pod1-1').cgroup).trim()).toBe('');
    const ids = (what: 'map' | 'prog' | 'link'): number[] =>
      (JSON.parse(execFileSync('bpftool', ['-j', what, 'show'], { encoding: 'utf8' })) as Array<{ id: number }>).map((x) => x.id);
    // the kernel frees a map or program shortly after its last reference goes (deferred work)
    await waitFor(
      'our maps, programs and links to be freed',
      async () => {
        const maps = ids('map');
        const progs = ids('prog');
        const links = ids('link');
        const left = [
          ...mapIds.filter((id) => maps.includes(id)).map((id) => `map ${id}`),
          ...linkIds.filter((l) => links.includes(l.id)).map((l) => `link ${l.id}`),
          ...linkIds.filter((l) => progs.includes(l.prog_id)).map((l) => `prog ${l.prog_id}`),
        ];
        if (left.length) throw new Error(`still there: ${left.join(', ')}`);
        return true;
      },
      scaled(5000),
    );
    // and the pod talks directly again
    const [direct] = await runClient(topo, 'pod1-1', pod('pod2-1').ip, 8080, 100);
    expect(direct).toMatchObject({ ok: true, peer: `${pod('pod2-1').ip}:8080` });
  });
});
