// The CNI plugin against the node proxy's real socket server (over a real unix socket in a temp
// dir), as the runtime calls it: CNI_* environment and a chained config with prevResult on stdin.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log';
import { parseCniArgs, runPlugin } from './plugin';
import { MAX_MESSAGE_BYTES, type PodEvent, type PodEventReply } from './protocol';
import { startCniServer, type CniServer } from './server';

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

  it('parses CNI_ARGS', () => {
    expect(parseCniArgs('IgnoreUnknown=1;K8S_POD_NAME=a=b')).toEqual({ IgnoreUnknown: '1', K8S_POD_NAME: 'a=b' });
    expect(parseCniArgs(undefined)).toEqual({});
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
