// The CNI plugin executable (node-proxy/cni/c/nodemesh-cni.c, built by scripts/setup.sh into
// dist/cni-plugin/nodemesh) against the node proxy's real socket server (over a real unix socket
// in a temp dir), run as the container runtime runs it: a process with only the CNI_* environment
// and a chained config with prevResult on stdin.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log';
import { CNI_PLUGIN_EXECUTABLE } from './install';
import { MAX_MESSAGE_BYTES, type PodEvent, type PodEventReply } from './protocol';
import { startCniServer, type CniServer } from './server';

interface PluginOutput {
  code: number;
  stdout: string;
  stderr: string;
}

/** One invocation of the executable: environment + stdin in, exit code and output out. */
function runPlugin(env: NodeJS.ProcessEnv, stdin: string): Promise<PluginOutput> {
  return new Promise((resolve, reject) => {
    const child = execFile(CNI_PLUGIN_EXECUTABLE, [], { env, timeout: 20_000 }, (err, stdout, stderr) => {
      if (err && typeof (err as NodeJS.ErrnoException).code === 'string')
        return reject(new Error(`cannot run ${CNI_PLUGIN_EXECUTABLE} (run scripts/setup.sh): ${err.message}`));
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    child.stdin?.end(stdin);
  });
}

const UID = '0b8e3f9a-1c2d-4e5f-8a9b-0c1d2e3f4a5b';
const prevResult = {
  cniVersion: '1.0.0',
  interfaces: [
    { name: 'nm-br', mac: '0a:58:0a:c8:01:01' },
    { name: 'eth0', mac: '0a:58:0a:c8:01:64', sandbox: '/run/netns/x' },
  ],
  ips: [{ address: '10.200.1.100/24', gateway: '10.200.1.1', interface: 1 }],
  routes: [{ dst: '0.0.0.0/0' }],
};
const log = createLogger('test', 'silent');

let dir: string;
let socketPath: string;
let server: CniServer | undefined;
let seen: PodEvent[];

const conf = (extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ cniVersion: '1.0.0', name: 'k8s-pod-network', type: 'nodemesh', socket: socketPath, timeoutSeconds: 2, prevResult, ...extra });
const env = (
  command: string,
  args = `IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=${'c'.repeat(64)};K8S_POD_UID=${UID}`,
): NodeJS.ProcessEnv => ({
  CNI_COMMAND: command,
  CNI_CONTAINERID: 'c'.repeat(64),
  CNI_NETNS: '/run/netns/cni-1234',
  CNI_IFNAME: 'eth0',
  CNI_ARGS: args,
  CNI_PATH: '/usr/lib/cni',
});

async function serve(reply: (ev: PodEvent) => Promise<PodEventReply> | PodEventReply, opts: { requestTimeoutMs?: number } = {}): Promise<CniServer> {
  server = await startCniServer({ socketPath, log, handler: async (ev) => (seen.push(ev), reply(ev)), ...opts });
  return server;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nm-cni-'));
  socketPath = join(dir, 'run', 'cni.sock');
  seen = [];
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe('nodemesh CNI plugin', () => {
  it('VERSION names the supported spec versions', async () => {
    const out = await runPlugin({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({ cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] });
  });

  it('ADD tells the node proxy about the pod and prints the previous result unchanged once it answers', async () => {
    await serve(() => ({ ok: true, captured: true, message: 'captured' }));
    const out = await runPlugin(env('ADD'), conf());
    expect(out.code, out.stdout).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual(prevResult);
    expect(seen).toEqual([
      { kind: 'ADD', namespace: 'shop', name: 'web-0', uid: UID, containerId: 'c'.repeat(64), netns: '/run/netns/cni-1234', ips: ['10.200.1.100'] },
    ]);
  });

  it('ADD fails with code 11 (try again later) while the node proxy is unreachable, so kubelet retries', async () => {
    const out = await runPlugin(env('ADD'), conf());
    expect(out.code).toBe(1);
    const err = JSON.parse(out.stdout) as { code: number; msg: string; cniVersion: string };
    expect(err.cniVersion).toBe('1.0.0');
    expect(err.code).toBe(11);
    expect(err.msg).toMatch(/node proxy not ready for pod shop\/web-0: cannot reach the node proxy at .*ENOENT/);
  });

  it('failOpen: true lets the pod start uncaptured when the node proxy is away', async () => {
    const out = await runPlugin(env('ADD'), conf({ failOpen: true }));
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual(prevResult);
    expect(out.stderr).toMatch(/failOpen is set/);
  });

  it('a node proxy that says retry gives code 11; one that refuses gives code 5', async () => {
    await serve((ev) =>
      ev.name === 'web-0' ? { ok: false, retry: true, error: 'control plane has not published the pod' } : { ok: false, retry: false, error: 'no' },
    );
    const a = JSON.parse((await runPlugin(env('ADD'), conf())).stdout) as { code: number; msg: string };
    expect(a).toMatchObject({ code: 11, msg: 'nodemesh: control plane has not published the pod' });
    const b = JSON.parse((await runPlugin(env('ADD', 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=db-0'), conf())).stdout) as { code: number };
    expect(b.code).toBe(5);
  });

  it('gives up after timeoutSeconds when the node proxy does not answer', async () => {
    await serve(() => new Promise<PodEventReply>(() => undefined));
    const t0 = Date.now();
    const out = await runPlugin(env('ADD'), conf({ timeoutSeconds: 1 }));
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(JSON.parse(out.stdout)).toMatchObject({ code: 11, msg: expect.stringMatching(/no answer from the node proxy within 1 s/) });
  });

  it('excluded namespaces and non-Kubernetes sandboxes never wait for the node proxy', async () => {
    const a = await runPlugin(env('ADD', 'K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-1'), conf());
    expect(a.code).toBe(0);
    expect(JSON.parse(a.stdout)).toEqual(prevResult);
    const b = await runPlugin(env('ADD', ''), conf());
    expect(b.code).toBe(0);
  });

  it('DEL succeeds even when the node proxy is away (teardown is never blocked) and prints nothing', async () => {
    const out = await runPlugin({ ...env('DEL'), CNI_NETNS: '' }, conf());
    expect(out).toMatchObject({ code: 0, stdout: '' });
    expect(out.stderr).toMatch(/not delivered/);
  });

  it('refuses configurations it cannot honour, with the CNI error code', async () => {
    const code = async (e: NodeJS.ProcessEnv, c: string): Promise<number> => (JSON.parse((await runPlugin(e, c)).stdout) as { code: number }).code;
    expect(await code(env('ADD'), conf({ cniVersion: '0.2.0' }))).toBe(1);
    expect(await code(env('ADD'), conf({ prevResult: undefined }))).toBe(7); // not chained
    expect(await code(env('ADD'), 'not json')).toBe(6);
    expect(await code(env('ADD'), conf({ timeoutSeconds: -1 }))).toBe(7);
    expect(await code(env('ADD'), conf({ socket: 'relative.sock' }))).toBe(7);
    expect(await code({ ...env('ADD'), CNI_NETNS: '' }, conf())).toBe(4);
    expect(await code(env('GC'), conf())).toBe(4);
    expect(await code(env('ADD', 'K8S_POD_NAME'), conf())).toBe(4);
  });

  it('takes the last of repeated CNI_ARGS keys, keeps "=" in values, and escapes what it forwards', async () => {
    await serve(() => ({ ok: true, captured: false, message: 'not in the mesh' }));
    const out = await runPlugin(env('CHECK', 'K8S_POD_NAMESPACE=other;K8S_POD_NAMESPACE=shop;;K8S_POD_NAME=web-0;X=a=b'), conf());
    expect(out).toMatchObject({ code: 0, stdout: '' });
    expect(seen).toEqual([
      { kind: 'CHECK', namespace: 'shop', name: 'web-0', uid: '', containerId: 'c'.repeat(64), netns: '/run/netns/cni-1234', ips: ['10.200.1.100'] },
    ]);
    // A name the node proxy refuses comes back as its error, quotes and all, in valid JSON.
    const bad = await runPlugin(env('ADD', 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=we"b\\x'), conf());
    expect(JSON.parse(bad.stdout)).toMatchObject({ code: 5, msg: expect.stringMatching(/field 'name' is not a Kubernetes pod name: 'we"b\\x'/) });
  });

  it("keeps prevResult as it is, with the configuration's cniVersion, whatever its members", async () => {
    await serve(() => ({ ok: true, captured: true, message: '' }));
    const prev = {
      cniVersion: '0.4.0',
      ips: [{ address: 'fd00::5/64' }, { address: '10.0.0.5/8' }],
      dns: { nameservers: ['10.96.0.10'] },
      'we"ird': [1.5, null, true, 'é\u2028'],
    };
    const out = await runPlugin(env('ADD'), conf({ prevResult: prev }));
    expect(out.code, out.stdout).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({ ...prev, cniVersion: '1.0.0' });
    expect(seen[0]?.ips).toEqual(['fd00::5', '10.0.0.5']);
  });

  it('says what is wrong with a bad answer from the node proxy, and DEL still succeeds', async () => {
    const { createServer } = await import('node:net');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, 'run'), { recursive: true });
    const answers = ['{"ok":true}\n', 'nope\n', `${'x'.repeat(MAX_MESSAGE_BYTES + 1)}\n`, ''];
    let i = 0;
    const fake = createServer((s) => {
      const a = answers[i++] ?? '';
      s.on('data', () => (a ? s.end(a) : s.destroy()));
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => fake.listen(socketPath, () => r()));
    try {
      const msgs: string[] = [];
      for (let k = 0; k < 4; k++) msgs.push((JSON.parse((await runPlugin(env('ADD'), conf())).stdout) as { msg: string }).msg);
      expect(msgs[0]).toMatch(/bad answer from the node proxy: the reply is neither/);
      expect(msgs[1]).toMatch(/bad answer from the node proxy: message is not valid JSON/);
      expect(msgs[2]).toMatch(/bad answer from the node proxy: message exceeds 65536 bytes/);
      expect(msgs[3]).toMatch(/closed the connection without an answer/);
      const del = await runPlugin({ ...env('DEL'), CNI_NETNS: '' }, conf());
      expect(del).toMatchObject({ code: 0, stdout: '' });
    } finally {
      await new Promise<void>((r) => fake.close(() => r()));
    }
  });

  it('is a static executable that needs no Node.js (nothing but the CNI environment)', async () => {
    const { readFileSync } = await import('node:fs');
    const elf = readFileSync(CNI_PLUGIN_EXECUTABLE);
    expect(elf.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    const out = await runPlugin({ CNI_COMMAND: 'VERSION' }, '');
    expect(JSON.parse(out.stdout)).toEqual({ cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] });
  });
});

describe('the node proxy CNI socket', () => {
  const raw = (payload: Buffer | string, endAfter = true): Promise<string> =>
    new Promise((resolve) => {
      const s = connect(socketPath);
      let out = '';
      s.on('data', (d) => (out += d.toString()));
      s.on('close', () => resolve(out));
      s.on('error', () => undefined);
      s.on('connect', () => (endAfter ? s.end(payload) : s.write(payload)));
    });

  it('is reachable by root only: 0700 directory, 0600 socket', async () => {
    await serve(() => ({ ok: true, captured: false, message: '' }));
    expect(statSync(join(dir, 'run')).mode & 0o777).toBe(0o700);
    expect(statSync(socketPath).mode & 0o777).toBe(0o600);
  });

  it('refuses an oversized request, bad JSON and bad fields without calling the handler', async () => {
    await serve(() => ({ ok: true, captured: false, message: '' }));
    expect(JSON.parse(await raw(Buffer.alloc(MAX_MESSAGE_BYTES + 10, 0x61)))).toMatchObject({ ok: false, error: expect.stringMatching(/exceeds/) });
    expect(JSON.parse(await raw('{nope\n'))).toMatchObject({ ok: false, error: 'message is not valid JSON' });
    const bad = { kind: 'ADD', namespace: 'Shop!', name: 'a', uid: '', containerId: 'x', netns: '/run/netns/a', ips: [] };
    expect(JSON.parse(await raw(JSON.stringify(bad) + '\n'))).toMatchObject({ ok: false, error: expect.stringMatching(/field 'namespace'/) });
    const traversal = { ...bad, namespace: 'shop', netns: '/run/../etc/passwd' };
    expect(JSON.parse(await raw(JSON.stringify(traversal) + '\n'))).toMatchObject({ ok: false, error: expect.stringMatching(/field 'netns'/) });
    expect(seen).toEqual([]);
    expect(server?.refused).toMatchObject({ malformed: 2, invalid: 2 });
  });

  it('drops a client that does not send its request in time', async () => {
    await serve(() => ({ ok: true, captured: false, message: '' }), { requestTimeoutMs: 200 });
    const t0 = Date.now();
    expect(await raw('{"kind":', false)).toBe('');
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(server?.refused).toMatchObject({ timeout: 1 });
  });

  it('refuses to replace a file that is not a socket', async () => {
    const { writeFileSync, mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, 'run'), { recursive: true });
    writeFileSync(socketPath, 'x');
    await expect(serve(() => ({ ok: true, captured: false, message: '' }))).rejects.toThrow(/is not a socket/);
  });
});
