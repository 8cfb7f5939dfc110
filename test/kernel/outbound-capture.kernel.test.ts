// Outbound capture on the real kernel: connect4/connect6/sockops attached to a throwaway cgroup.
// A client process in that cgroup (and in the workload's netns) connecting to a made-up service
// address lands on the "node proxy" listener at 127.0.0.1:15001 / [::1]:15001 in that netns,
// which recovers the original destination from nm_orig_dst. Loopback, mesh ports, excluded
// ports and CIDRs, other cgroups (the node proxy's own sockets) are not redirected; with no
// listener the connect is refused at once; a pinned link keeps capturing after its fd closes.
import * as net from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bpfObjectDir } from '../../common/paths';
import { BpfLink, BpfMap, BpfObject, connectInNetns, layout, listenInNetns, netnsCookie } from '../../native';
import { listenCaptured, type AcceptedConnection } from '../../native/netns-accept';
import { privilegedDescribe } from '../support/privileged';
import { clientInCgroup, expectReleased, Scratch, sh } from './support';

const captureObject = join(bpfObjectDir, 'capture.o');

privilegedDescribe('kernel', 'outbound capture (cgroup/connect4, connect6, sockops)', () => {
  const scratch = new Scratch('nm-kout');
  const servers: net.Server[] = [];
  const links: BpfLink[] = [];
  const maps: BpfMap[] = [];
  const progIds: number[] = [];
  let ns = '';
  let cg = '';
  let cookie = 0n;
  let workloads: BpfMap;
  let exclPorts: BpfMap;
  let exclCidrs: BpfMap;
  let origDst: BpfMap;
  let pending: BpfMap;
  let proxy4: net.Server;
  let pinDir = '';

  /** A server inside the netns answering every connection with one line from reply(). */
  function serve(host: string, port: number, reply: (s: net.Socket) => string): net.Server {
    const fd = listenInNetns(ns, { host, port });
    const server = net.createServer((s) => {
      s.once('data', () => s.end(reply(s) + '\n'));
      s.on('error', () => undefined);
    });
    server.listen({ fd });
    servers.push(server);
    return server;
  }

  beforeAll(async () => {
    sh('make', ['-s', '-C', join(bpfObjectDir, '..')]);
    try {
      ns = scratch.netns('w');
      const name = ns.split('/').pop() as string;
      const ip = (...a: string[]) => sh('ip', ['-n', name, ...a]);
      ip('link', 'add', 'nm-kd0', 'type', 'veth', 'peer', 'name', 'nm-kd1');
      ip('addr', 'add', '10.240.0.2/24', 'dev', 'nm-kd0');
      ip('addr', 'add', 'fd00:240::2/64', 'dev', 'nm-kd0', 'nodad');
      ip('link', 'set', 'nm-kd0', 'up');
      ip('route', 'add', 'default', 'dev', 'nm-kd0');
      ip('-6', 'route', 'add', 'default', 'dev', 'nm-kd0');
      cg = scratch.cgroup('w');
      pinDir = scratch.pinDir();
      cookie = netnsCookie(ns);

      const obj = BpfObject.open(captureObject);
      try {
        workloads = obj.map('nm_workloads');
        exclPorts = obj.map('nm_excl_ports');
        exclCidrs = obj.map('nm_excl_cidrs');
        origDst = obj.map('nm_orig_dst');
        pending = obj.map('nm_pending');
        maps.push(workloads, exclPorts, exclCidrs, origDst, pending);
        for (const name of ['nm_connect4', 'nm_connect6', 'nm_sockops']) {
          const prog = obj.program(name);
          progIds.push(prog.info().id);
          links.push(prog.attachCgroup(cg));
          prog.close();
        }
      } finally {
        obj.close();
      }
      workloads.update(layout.encodeU64(cookie), layout.encodeWorkload({ flags: layout.WorkloadFlags.CAPTURE_OUT, outboundPort: 0 }));

      const whereTo = (s: net.Socket): string => {
        const key = layout.encodeConnKey({ netnsCookie: cookie, address: s.remoteAddress as string, port: s.remotePort as number });
        const v = origDst.lookup(key);
        if (!v) return 'proxy none';
        origDst.delete(key);
        const d = layout.decodeSockAddr(v);
        return `proxy ${d.address}:${d.port} family${d.family}`;
      };
      proxy4 = serve('127.0.0.1', 15001, whereTo);
      serve('::1', 15001, whereTo);
      serve('10.240.0.2', 9998, () => 'direct');
      serve('10.240.0.2', 9999, () => 'direct');
      serve('10.240.0.2', 15008, () => 'direct');
      serve('127.0.0.1', 9997, () => 'direct');
    } catch (err) {
      await teardown();
      throw err;
    }
  });

  async function teardown(): Promise<void> {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
    for (const l of links.splice(0)) l.close();
    const mapIds = maps.map((m) => m.info.id);
    for (const m of maps.splice(0)) m.close();
    scratch.cleanup();
    await expectReleased(progIds, mapIds);
  }
  afterAll(teardown);

  it('redirects a connect to a made-up service IP to the proxy in the netns, original destination recoverable', async () => {
    const r = await clientInCgroup(cg, ns, '10.96.0.12', 8080);
    expect(r).toMatchObject({ ok: true, reply: 'proxy 10.96.0.12:8080 family4' });
    // the app sees itself connected (to the proxy, from loopback) and nothing is left pending
    expect(r.localAddress).toBe('127.0.0.1');
    expect([...pending.keys()]).toEqual([]);
  });

  it('redirects an app that bound its source address first; the proxy sees that source', async () => {
    const r = await clientInCgroup(cg, ns, '10.96.0.12', 8080, 3000, '10.240.0.2');
    expect(r).toMatchObject({ ok: true, reply: 'proxy 10.96.0.12:8080 family4', localAddress: '10.240.0.2' });
  });

  it('redirects IPv6 connects to [::1]:15001 with the original IPv6 destination', async () => {
    const r = await clientInCgroup(cg, ns, 'fd00:96::12', 443);
    expect(r).toMatchObject({ ok: true, reply: 'proxy fd00:96::12:443 family6' });
    // an IPv6 socket connecting to an IPv4-mapped address goes to the IPv4 listener
    const m = await clientInCgroup(cg, ns, '::ffff:10.96.0.13', 80);
    expect(m).toMatchObject({ ok: true, reply: 'proxy 10.96.0.13:80 family6', localAddress: '::ffff:127.0.0.1' });
  });

  it('leaves loopback, mesh ports, excluded ports and excluded CIDRs alone', async () => {
    expect((await clientInCgroup(cg, ns, '127.0.0.1', 9997)).reply).toBe('direct');
    expect((await clientInCgroup(cg, ns, '10.240.0.2', 15008)).reply).toBe('direct');
    expect((await clientInCgroup(cg, ns, '10.240.0.2', 9999)).reply).toBe('proxy 10.240.0.2:9999 family4');

    const portKey = layout.encodePortKey({ netnsCookie: cookie, port: 9999, direction: layout.Direction.OUT });
    exclPorts.update(portKey, layout.PRESENT);
    try {
      expect((await clientInCgroup(cg, ns, '10.240.0.2', 9999)).reply).toBe('direct');
      expect((await clientInCgroup(cg, ns, '10.240.0.2', 9998)).reply).toBe('proxy 10.240.0.2:9998 family4');
    } finally {
      exclPorts.delete(portKey);
    }

    const cidrKey = layout.encodeCidrKey({ netnsCookie: cookie, cidr: '10.240.0.0/24' });
    exclCidrs.update(cidrKey, layout.PRESENT);
    try {
      expect((await clientInCgroup(cg, ns, '10.240.0.2', 9998)).reply).toBe('direct');
      // an exclusion for another workload's netns does not apply here
      exclCidrs.delete(cidrKey);
      exclCidrs.update(layout.encodeCidrKey({ netnsCookie: cookie + 1n, cidr: '10.240.0.0/24' }), layout.PRESENT);
      expect((await clientInCgroup(cg, ns, '10.240.0.2', 9998)).reply).toBe('proxy 10.240.0.2:9998 family4');
    } finally {
      exclCidrs.delete(cidrKey);
      exclCidrs.delete(layout.encodeCidrKey({ netnsCookie: cookie + 1n, cidr: '10.240.0.0/24' }));
    }
  });

  it("does not capture the node proxy's own sockets (outside the workload cgroup)", async () => {
    const s = await connectInNetns(ns, { host: '10.240.0.2', port: 9998 });
    const reply = await new Promise<string>((resolve, reject) => {
      let buf = '';
      s.on('data', (d: Buffer) => (buf += d.toString()));
      s.on('end', () => resolve(buf.trim()));
      s.on('error', reject);
      s.write('hello\n');
    });
    expect(reply).toBe('direct');
  });

  it('does not capture a workload that is not enrolled in nm_workloads', async () => {
    workloads.delete(layout.encodeU64(cookie));
    try {
      expect((await clientInCgroup(cg, ns, '10.240.0.2', 9998)).reply).toBe('direct');
    } finally {
      workloads.update(layout.encodeU64(cookie), layout.encodeWorkload({ flags: layout.WorkloadFlags.CAPTURE_OUT, outboundPort: 0 }));
    }
  });

  it('keeps capturing through a pinned link after the fds close, and stops when the link is detached', async () => {
    const [connect4] = links.splice(0, 1) as [BpfLink];
    connect4.pin(join(pinDir, 'connect4'));
    connect4.close(); // like a node proxy exiting
    expect((await clientInCgroup(cg, ns, '10.96.0.12', 8080)).reply).toBe('proxy 10.96.0.12:8080 family4');
    const again = BpfLink.fromPin(join(pinDir, 'connect4'));
    expect(again.info().attachType).toBe('cgroup_inet4_connect');
    again.detach();
    expect((await clientInCgroup(cg, ns, '10.240.0.2', 9998)).reply).toBe('direct');
  });

  it('refuses the connect at once when no proxy listens (plaintext never leaks)', async () => {
    // re-attach connect4 (the previous test detached it), loaded against the same maps through
    // a pin root, as a restarted node proxy would
    const root = join(pinDir, 'maps');
    for (const m of maps) m.pin(join(root, m.name));
    const shared = BpfObject.open(captureObject, { pinRoot: root });
    const p4 = shared.program('nm_connect4');
    progIds.push(p4.info().id);
    links.push(p4.attachCgroup(cg));
    p4.close();
    shared.close();

    expect((await clientInCgroup(cg, ns, '10.96.0.12', 8080)).reply).toBe('proxy 10.96.0.12:8080 family4');
    await new Promise((r) => proxy4.close(r));
    const r = await clientInCgroup(cg, ns, '10.96.0.12', 8080);
    expect(r.ok).toBe(false);
    expect(r.code).toBe('ECONNREFUSED');
    expect(r.ms).toBeLessThan(1000);
  });

  it("the addon's capture listener hands each connection over as an fd with its original destination, taken from the map", async () => {
    // 15001 is free again (the previous test closed the net.Server); connect4 is attached
    const got: AcceptedConnection[] = [];
    const errors: Error[] = [];
    const listener = listenCaptured(
      ns,
      { host: '127.0.0.1', port: 15001, netnsCookie: cookie, originalsMapFd: origDst.fd },
      (c) => {
        got.push(c);
        const s = new net.Socket({ fd: c.fd, readable: true, writable: true });
        s.on('error', () => undefined);
        s.once('data', () => s.end(`proxy ${c.originalDestination ? `${c.originalDestination.address}:${c.originalDestination.port}` : 'none'}\n`));
      },
      (err) => errors.push(err),
    );
    try {
      const r = await clientInCgroup(cg, ns, '10.96.0.12', 8080);
      expect(r).toMatchObject({ ok: true, reply: 'proxy 10.96.0.12:8080' });
      expect(got[0]).toMatchObject({ client: { address: '127.0.0.1', port: r.localPort }, originalTaken: true });
      expect([...origDst.keys()]).toEqual([]); // taken: looked up and removed
      // not captured (this process is outside the cgroup): nothing recorded for it
      const direct = await connectInNetns(ns, { host: '127.0.0.1', port: 15001 });
      await new Promise((resolve) => {
        direct.once('data', resolve);
        direct.write('x');
      });
      direct.destroy();
      expect(got[1]).toMatchObject({ originalTaken: true, originalDestination: undefined });
      expect(errors).toEqual([]);
    } finally {
      listener.close();
    }
    // closed: the port is free and a captured connect is refused at once again
    expect(listener.fd).toBe(-1);
    expect((await clientInCgroup(cg, ns, '10.96.0.12', 8080)).code).toBe('ECONNREFUSED');
  });

  it("capture listeners share one duplicate of the map's fd, held until the last of them closes", async () => {
    // this process's fds on the map (fdinfo names a BPF map's id): the test's own and the listeners'
    const mapIdOf = (fd: number): string | undefined => /^map_id:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
    const mapId = mapIdOf(origDst.fd);
    expect(mapId).toBeDefined();
    const fds = (): number =>
      readdirSync('/proc/self/fdinfo').filter((f) => {
        try {
          return mapIdOf(Number(f)) === mapId;
        } catch {
          return false; // closed meanwhile
        }
      }).length;
    const open = (port: number, got: AcceptedConnection[]) =>
      listenCaptured(
        ns,
        { host: '127.0.0.1', port, netnsCookie: cookie, originalsMapFd: origDst.fd },
        (c) => {
          got.push(c);
          const s = new net.Socket({ fd: c.fd, readable: true, writable: true });
          s.on('error', () => undefined);
          s.once('data', () => s.end(`proxy ${c.originalDestination ? `${c.originalDestination.address}:${c.originalDestination.port}` : 'none'}\n`));
        },
        () => undefined,
      );
    const base = fds();
    const got: AcceptedConnection[] = [];
    const first = open(15001, got);
    const second = open(15002, got);
    let third: ReturnType<typeof open> | undefined;
    try {
      // one duplicate of the map's fd for both listeners (each had its own: 2)
      expect(fds() - base).toBe(1);
      first.close();
      expect(fds() - base).toBe(1);
      // the duplicate outlives the listener that made it: a new listener takes originals through it
      third = open(15001, got);
      expect(fds() - base).toBe(1);
      const r = await clientInCgroup(cg, ns, '10.96.0.12', 8080);
      expect(r).toMatchObject({ ok: true, reply: 'proxy 10.96.0.12:8080' });
      expect([...origDst.keys()]).toEqual([]);
    } finally {
      first.close();
      second.close();
      third?.close();
    }
    // the last one closed: the duplicate is gone too
    expect(fds()).toBe(base);
  });
});
