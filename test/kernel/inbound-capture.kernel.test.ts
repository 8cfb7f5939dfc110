// Inbound capture on the real kernel: sk_lookup attached to a workload's netns steers TCP
// arriving from outside (over a veth from a second netns) for the workload's address to the
// node proxy's inbound listener (15006) registered in nm_inbound; the original destination is
// the accepted socket's local address. HBONE (15008), excluded ports and connections from
// inside the netns reach the app directly; with the listener gone, inbound is dropped.
import * as net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bpfObjectDir } from '../../common/paths';
import { BpfLink, BpfMap, BpfObject, connectInNetns, fdOf, layout, listenInNetns, NativeError, netnsCookie } from '../../native';
import { privilegedDescribe } from '../support/privileged';
import { expectReleased, Scratch, sh } from './support';

const captureObject = join(bpfObjectDir, 'capture.o');
const APP = '10.241.0.2';
const APP6 = 'fd00:241::2';

privilegedDescribe('kernel', 'inbound capture (sk_lookup)', () => {
  const scratch = new Scratch('nm-kin');
  const servers: net.Server[] = [];
  const maps: BpfMap[] = [];
  const progIds: number[] = [];
  let link: BpfLink | undefined;
  let inside = '';
  let outside = '';
  let cookie = 0n;
  let inbound: BpfMap;
  let workloads: BpfMap;
  let workloadIps: BpfMap;
  let exclPorts: BpfMap;
  let proxy: net.Server;

  function serve(host: string, port: number, reply: (s: net.Socket) => string): net.Server {
    const fd = listenInNetns(inside, { host, port });
    const server = net.createServer((s) => {
      s.once('data', () => s.end(reply(s) + '\n'));
      s.on('error', () => undefined);
    });
    server.listen({ fd });
    servers.push(server);
    return server;
  }

  async function ask(from: string, host: string, port: number): Promise<string> {
    const s = await connectInNetns(from, { host, port, timeoutMs: 2000 });
    return new Promise<string>((resolve, reject) => {
      let buf = '';
      s.setTimeout(2000, () => s.destroy(new Error('no reply')));
      s.on('data', (d: Buffer) => (buf += d.toString()));
      s.on('end', () => resolve(buf.trim()));
      s.on('error', reject);
      s.write('hello\n');
    });
  }

  beforeAll(async () => {
    sh('make', ['-s', '-C', join(bpfObjectDir, '..')]);
    try {
      inside = scratch.netns('i');
      outside = scratch.netns('o');
      const i = inside.split('/').pop() as string;
      const o = outside.split('/').pop() as string;
      sh('ip', ['-n', o, 'link', 'add', 'nm-kvo', 'type', 'veth', 'peer', 'name', 'nm-kvi', 'netns', i]);
      sh('ip', ['-n', o, 'addr', 'add', '10.241.0.1/24', 'dev', 'nm-kvo']);
      sh('ip', ['-n', i, 'addr', 'add', `${APP}/24`, 'dev', 'nm-kvi']);
      sh('ip', ['-n', o, 'addr', 'add', 'fd00:241::1/64', 'dev', 'nm-kvo', 'nodad']);
      sh('ip', ['-n', i, 'addr', 'add', `${APP6}/64`, 'dev', 'nm-kvi', 'nodad']);
      sh('ip', ['-n', o, 'link', 'set', 'nm-kvo', 'up']);
      sh('ip', ['-n', i, 'link', 'set', 'nm-kvi', 'up']);
      cookie = netnsCookie(inside);

      const obj = BpfObject.open(captureObject);
      try {
        inbound = obj.map('nm_inbound');
        workloads = obj.map('nm_workloads');
        workloadIps = obj.map('nm_workload_ips');
        exclPorts = obj.map('nm_excl_ports');
        maps.push(inbound, workloads, workloadIps, exclPorts);
        const prog = obj.program('nm_sk_lookup');
        progIds.push(prog.info().id);
        link = prog.attachNetns(inside);
        prog.close();
      } finally {
        obj.close();
      }

      // the app
      serve(APP, 8080, () => 'app');
      serve(APP6, 8080, () => 'app');
      serve(APP, 8081, () => 'app');
      serve(APP, 15008, () => 'hbone');
      // the node proxy's inbound listener: it reports the original destination (its local address)
      proxy = serve('0.0.0.0', 15006, (s) => `proxy ${s.localAddress}:${s.localPort} from ${s.remoteAddress}`);
      // IPv6 needs an IPv6 listener; sk_assign ignores what it is bound to
      const proxy6 = serve('::1', 15006, (s) => `proxy6 [${s.localAddress}]:${s.localPort} from ${s.remoteAddress}`);
      await new Promise((r) => setImmediate(r));

      workloads.update(layout.encodeU64(cookie), layout.encodeWorkload({ flags: layout.WorkloadFlags.CAPTURE_IN, outboundPort: 0 }));
      workloadIps.update(layout.encodeIpKey(APP), layout.encodeU64(cookie));
      inbound.updateSocket(layout.encodeIpKey(APP), fdOf(proxy));
      workloadIps.update(layout.encodeIpKey(APP6), layout.encodeU64(cookie));
      inbound.updateSocket(layout.encodeIpKey(APP6), fdOf(proxy6));
    } catch (err) {
      await teardown();
      throw err;
    }
  });

  async function teardown(): Promise<void> {
    link?.close();
    link = undefined;
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
    const mapIds = maps.map((m) => m.info.id);
    for (const m of maps.splice(0)) m.close();
    scratch.cleanup();
    await expectReleased(progIds, mapIds);
  }
  afterAll(teardown);

  it('steers a connection from outside to the inbound listener, original destination = local address', async () => {
    expect(await ask(outside, APP, 8080)).toBe(`proxy ${APP}:8080 from 10.241.0.1`);
    // any port, even one nothing listens on
    expect(await ask(outside, APP, 5555)).toBe(`proxy ${APP}:5555 from 10.241.0.1`);
    expect(await ask(outside, APP6, 8080)).toBe(`proxy6 [${APP6}]:8080 from fd00:241::1`);
    expect(await ask(inside, APP6, 8080)).toBe('app');
  });

  it('lets HBONE (15008), excluded inbound ports and connections from inside the netns reach the app', async () => {
    expect(await ask(outside, APP, 15008)).toBe('hbone');
    const key = layout.encodePortKey({ netnsCookie: cookie, port: 8081, direction: layout.Direction.IN });
    exclPorts.update(key, layout.PRESENT);
    try {
      expect(await ask(outside, APP, 8081)).toBe('app');
      expect(await ask(outside, APP, 8080)).toMatch(/^proxy /);
    } finally {
      exclPorts.delete(key);
    }
    // the node proxy connecting to the app from inside the workload's netns is not steered
    expect(await ask(inside, APP, 8080)).toBe('app');
  });

  async function refused(): Promise<string> {
    const err = await ask(outside, APP, 8080).then(
      (reply) => new Error(`connected, reply ${reply}`),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NativeError);
    return (err as NativeError).code;
  }

  it('drops inbound connections when the enrolled workload has no inbound listener', async () => {
    inbound.delete(layout.encodeIpKey(APP));
    try {
      expect(await refused()).toBe('ECONNREFUSED');
    } finally {
      inbound.updateSocket(layout.encodeIpKey(APP), fdOf(proxy));
    }
    expect(await ask(outside, APP, 8080)).toMatch(/^proxy /);
  });

  it('fails closed when the node proxy closes its listener, and stops steering once the link is detached', async () => {
    await new Promise((r) => proxy.close(r));
    // the sockhash entry went away with the socket
    expect(inbound.lookup(layout.encodeIpKey(APP))).toBeUndefined();
    expect(await refused()).toBe('ECONNREFUSED');
    link?.detach();
    link = undefined;
    expect(await ask(outside, APP, 8080)).toBe('app');
  });
});
