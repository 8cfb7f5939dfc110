// Pod-to-pod traffic in a 2 nodes x 2 pods lab: TCP echo (sizes 0 B .. 4 MiB, sha256 checked) and
// HTTP (the server sees the client pod's own address), same node and across nodes; `lab exec`
// runs inside the pod's netns and cgroup.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { privilegedDescribe } from '../support/privileged';
import { labDown } from '../../lab/down';
import { labUp } from '../../lab/up';
import { runClient, reportPassed } from '../../lab/app/client';
import { runInLab } from '../../lab/spawn';
import { loadLabState, readLabProcesses, type LabTopology } from '../../lab/state';
import { ipBatch, run } from '../../lab/sys';
import { until } from '../support/until';
import { cli, dist, leftovers, startApp } from './support';

const LAB = 'nmt1';

privilegedDescribe('lab', 'pod-to-pod traffic in the netns lab', () => {
  let lab: LabTopology;
  let recorded: number[] = [];

  beforeAll(async () => {
    lab = (await labUp({ lab: LAB, nodes: 2, podsPerNode: 2 })).state;
    await startApp(lab, 'pod1-2', ['echo', '--port', '9000'], 'echo-same-node');
    await startApp(lab, 'pod2-1', ['echo', '--port', '9000'], 'echo-cross-node');
    await startApp(lab, 'pod2-2', ['http', '--port', '8080', '--name', 'web', '--version', 'v7'], 'web');
  });

  afterAll(async () => {
    recorded = readLabProcesses(LAB).map((p) => p.pid);
    await labDown(LAB);
    expect(await leftovers(LAB, recorded)).toEqual([]);
  });

  /** The sample client, run as a real process inside `from`. */
  async function clientIn(from: string, args: string[]) {
    const r = await runInLab(lab, from, [process.execPath, dist('lab/app/main.js'), 'client', ...args], 60_000);
    const report = JSON.parse(r.stdout) as Awaited<ReturnType<typeof runClient>>;
    return { code: r.code, report };
  }

  for (const [label, target] of [
    ['same node', '10.200.1.3:9000'],
    ['cross node', '10.200.2.2:9000'],
  ] as const) {
    it(`TCP echo ${label}: every size comes back byte for byte`, async () => {
      for (const size of [0, 1, 65_537, 4 * 1024 * 1024]) {
        const { code, report } = await clientIn('pod1-1', ['--target', target, '--connections', '6', '--concurrency', '3', '--size', String(size)]);
        expect(report.errorSamples).toEqual([]);
        expect(reportPassed(report)).toBe(true);
        expect(code).toBe(0);
        expect(report.bytesSent).toBe(size * 6);
        expect(report.bytesReceived).toBe(size * 6);
        expect(report.sha256Echoed).toBe(report.sha256Sent);
        expect(report.latencyMs.count).toBe(6);
      }
    });
  }

  it('HTTP cross node: the server names itself and sees the client pod address', async () => {
    const { code, report } = await clientIn('pod1-1', [
      '--mode',
      'http',
      '--target',
      '10.200.2.3:8080',
      '--connections',
      '4',
      '--size',
      '300k',
      '--header',
      'x-test=nmt1',
    ]);
    expect(code).toBe(0);
    expect(report.statusCodes).toEqual({ '200': 4 });
    expect(report.sample).toMatchObject({ app: 'web', pod: 'pod2-2', node: 'node2', version: 'v7' });
    expect(report.sample?.peer.address).toBe(lab.pods.find((p) => p.name === 'pod1-1')?.ip);
    expect(report.sample?.local).toEqual({ address: '10.200.2.3', port: 8080 });
    expect(report.sample?.request.headers['x-test']).toBe('nmt1');
    expect(report.sample?.request.bodySha256).toBe(report.sha256Sent);
  });

  it('HTTP same node and from the control host: the peer is the caller address', async () => {
    const same = await clientIn('pod2-1', ['--mode', 'http', '--target', '10.200.2.3:8080']);
    expect(same.report.sample?.peer.address).toBe('10.200.2.2');
    const ctl = await clientIn('control', ['--mode', 'http', '--target', '10.200.2.3:8080']);
    expect(ctl.report.sample?.peer.address).toBe('10.199.0.254');
  });

  it('a port added to a node’s pod bridge (a waypoint pod’s veth) leaves the bridge’s MAC and its pods’ cross-node connections as they were', async () => {
    // Before the lab fixed its bridges' MACs, a Linux bridge took the lowest MAC of its ports: a new
    // port with a lower one changed the gateway's MAC under the pods, and their connections through
    // it went silent (no FIN, no RST) for a minute — the Istio example's stalled HBONE connections.
    const node = lab.nodes.find((n) => n.name === 'node2') as LabTopology['nodes'][number];
    const macs = async (): Promise<Map<string, string>> =>
      new Map(
        (JSON.parse(await run('ip', ['-n', node.netns, '-j', 'link', 'show'])) as Array<{ ifname: string; address: string }>).map((l) => [l.ifname, l.address]),
      );
    const before = await macs();
    const bridgeMacBefore = before.get(node.podBridge);
    // a pod whose own port is not the bridge's MAC (the case the old bridges broke)
    const from = lab.pods.find((p) => p.node === node.name && before.get(p.hostIfName) !== bridgeMacBefore) as LabTopology['pods'][number];
    // one TCP connection from that pod to the echo on node1, kept open across the change (run with
    // ip netns exec: outside the pod's cgroup, so no capture — this is the lab's own network)
    const script = `
      const s = require('node:net').connect({ host: '10.200.1.3', port: 9000 });
      const say = (m) => process.stdout.write(m + '\\n');
      let want = 'a';
      s.on('data', (d) => { if (d.toString() === want) { say('echoed ' + want); if (want === 'b') process.exit(0); } });
      s.on('error', (e) => { say('error ' + e.message); process.exit(1); });
      s.on('connect', () => s.write('a'));
      process.stdin.once('data', () => { want = 'b'; s.write('b'); setTimeout(() => { say('no echo of b within 3 s'); process.exit(1); }, 3000); });
    `;
    const child = spawn('ip', ['netns', 'exec', from.netns, process.execPath, '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await until('the first echo across nodes', () => out.includes('echoed a'), 10_000);
      await ipBatch(node.netns, [
        'link add nm-lt-port address 02:00:00:00:00:00 type veth peer name nm-lt-peer',
        `link set nm-lt-port master ${node.podBridge}`,
        'link set nm-lt-port up',
        'link set nm-lt-peer up',
      ]);
      expect((await macs()).get(node.podBridge)).toBe(bridgeMacBefore);
      child.stdin.write('go\n');
      expect(await exited).toBe(0);
      expect(out).toContain('echoed b');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await run('ip', ['-n', node.netns, 'link', 'del', 'nm-lt-port']).catch(() => undefined);
    }
  });

  it('a pod cannot be reached on a port nobody listens on: the client reports the error and exits 1', async () => {
    const { code, report } = await clientIn('pod1-1', ['--target', '10.200.2.3:9999', '--connections', '2']);
    expect(code).toBe(1);
    expect(report.errors).toBe(2);
    expect(report.errorSamples.join()).toMatch(/ECONNREFUSED/);
  });

  it('lab exec runs inside the pod netns and cgroup, forwarding stdio and the exit code', async () => {
    const r = await cli(['lab', 'exec', '--lab', LAB, 'pod2-1', '--', 'sh', '-c', 'cat /proc/self/cgroup; ip -o -4 addr show; echo to-stderr >&2; exit 3']);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/^0::\/nm-nmt1\/pod2-1$/m);
    expect(r.stdout).toMatch(/eth0\s+inet 10\.200\.2\.2\/24/);
    expect(r.stdout).not.toMatch(/10\.200\.1\./);
    expect(r.stderr).toContain('to-stderr');
    const onNode = await runInLab(lab, 'node1', ['sh', '-c', 'cat /proc/self/cgroup; ip -o -4 addr show']);
    expect(onNode.stdout).toMatch(/^0::\/nm-nmt1\/node1$/m);
    expect(onNode.stdout).toMatch(/nm-ul\s+inet 10\.199\.0\.1\/24/);
    expect(onNode.stdout).toMatch(/nm-pods\s+inet 10\.200\.1\.1\/24/);
  });

  it('lab status lists the running sample apps; a missing pod is named in the error', async () => {
    const r = await cli(['lab', 'status', '--lab', LAB, '--json']);
    expect(r.code).toBe(0);
    const st = JSON.parse(r.stdout) as { processes: Array<{ name: string; place: string; alive: boolean }> };
    expect(
      st.processes
        .filter((p) => p.alive)
        .map((p) => `${p.name}@${p.place}`)
        .sort(),
    ).toEqual(['echo-cross-node@pod2-1', 'echo-same-node@pod1-2', 'web@pod2-2']);
    const bad = await cli(['lab', 'exec', '--lab', LAB, 'pod9-9', '--', 'true']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/no pod, node or control host named 'pod9-9'/);
    expect(loadLabState(LAB).phase).toBe('ready');
  });
});
