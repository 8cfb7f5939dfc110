// The config CLI end to end: a real `nodemesh control` process on loopback with a temp data dir,
// driven by real `nodemesh apply/get/delete/namespace` processes. Needs the build (dist/).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { cliEntry } from '../../common/paths';
import { scaled } from '../support/speed';

const fixtures = join(__dirname, 'fixtures', 'shop');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

// Every test here starts node processes (the CLI, the control plane); on a loaded 2-core CI machine
// a start-up takes seconds, so this file's limits are wider than the unit project's 20 s / 10 s.
vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });

let dataDir: string;
let server: ChildProcess | undefined;
let serverURL: string;

function nm(args: string[], opts: { stdin?: string; env?: Record<string, string | undefined> } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliEntry, ...args], {
      env: { ...process.env, NODEMESH_SERVER: serverURL, NODEMESH_DATA_DIR: dataDir, NODEMESH_TOKEN: '', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.stdin ?? '');
  });
}

/** Starts `nodemesh control` and resolves with its API URL once it logs that it listens. */
function startControl(): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliEntry, 'control', '--data-dir', dataDir, '--listen', '127.0.0.1:0'], {
      // The xDS component's fixed ports (15012, 15010) would collide with anything else running.
      env: { ...process.env, NODEMESH_XDS_LISTEN: '127.0.0.1:0', NODEMESH_XDS_PLAINTEXT_LISTEN: 'off' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    const timer = setTimeout(() => reject(new Error(`nodemesh control did not start within 30 s; its log:\n${log}`)), 30_000);
    child.stderr?.on('data', (c: Buffer) => {
      log += c.toString();
      const m = /"address":"([^"]+)".*"msg":"config API listening"/.exec(log);
      if (m && /control plane ready/.test(log)) {
        clearTimeout(timer);
        serverURL = `http://${m[1]}`;
        resolve(child);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`nodemesh control exited with ${code}; its log:\n${log}`));
    });
  });
}

function stop(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

beforeAll(async () => {
  if (!existsSync(cliEntry)) throw new Error(`${cliEntry} is missing: run 'bash scripts/setup.sh' to build first`);
  dataDir = mkdtempSync(join(tmpdir(), 'nm-cli-'));
  server = await startControl();
});
afterAll(async () => {
  await stop(server);
  rmSync(dataDir, { recursive: true, force: true });
});

describe('nodemesh config CLI against a running control plane', () => {
  it('applies a directory of every kind in one go and shows it as tables', async () => {
    const res = await nm(['apply', '-f', fixtures]);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout.trim().split('\n')).toEqual([
      'namespace/shop created',
      'workload/web-1 created',
      'workload/client-1 created',
      'service/web created',
      'peerauthentication/default created',
      'authorizationpolicy/web-allow-client created',
      'gateway/waypoint created',
      'httproute/web created',
    ]);
    const svc = await nm(['get', 'svc', '-n', 'shop']);
    expect(svc.stdout).toMatch(/^NAME\s+CLUSTER-IP\s+PORTS\s+SELECTOR\s+WAYPOINT\s+AGE\n/);
    expect(svc.stdout).toMatch(/\nweb\s+10\.96\.0\.12\s+80:http\/TCP\s+app=web\s+waypoint\s+\d+s\n$/);
    const wl = await nm(['get', 'workloads', '-A']);
    expect(wl.stdout.split('\n').filter(Boolean)).toHaveLength(3);
    expect(wl.stdout).toMatch(/shop\s+web-1\s+nm-node1\s+10\.200\.1\.10\s+web\s+/);
    expect((await nm(['get', 'ap', '-n', 'shop'])).stdout).toMatch(/web-allow-client\s+ALLOW\s+app=web\s+1\s+/);
    expect((await nm(['get', 'gateway', '-n', 'shop'])).stdout).toMatch(/waypoint\s+nodemesh-waypoint\s+service\s+mesh:15008\/HBONE/);
    expect((await nm(['get', 'ns'])).stdout).toMatch(/\nshop\s+ambient\s+/);
    expect((await nm(['apply', '-f', fixtures])).stdout).toMatch(/^namespace\/shop unchanged\n/);
  });

  it('prints yaml and json that can be applied back unchanged', async () => {
    const yaml = await nm(['get', 'httproute', 'web', '-n', 'shop', '-o', 'yaml']);
    expect(yaml.code).toBe(0);
    expect(yaml.stdout).toMatch(/^apiVersion: gateway.networking.k8s.io\/v1\nkind: HTTPRoute\n/);
    const back = await nm(['apply', '-f', '-'], { stdin: yaml.stdout });
    expect(back.stdout).toBe('httproute/web unchanged\n');
    const json = JSON.parse((await nm(['get', 'svc', '-n', 'shop', '-o', 'json'])).stdout) as { kind: string; items: { spec: { clusterIP: string } }[] };
    expect(json.kind).toBe('List');
    expect(json.items[0].spec.clusterIP).toBe('10.96.0.12');
    expect((await nm(['get', 'wl', '-n', 'shop', '-l', 'app=web', '-o', 'name'])).stdout).toBe('workload/web-1\n');
  });

  it('refuses an invalid file whole, naming the field, and changes nothing', async () => {
    const file = join(dataDir, 'bad.yaml');
    writeFileSync(
      file,
      `apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {ports: [{port: 81}]}
---
apiVersion: nodemesh.io/v1alpha1
kind: Workload
metadata: {name: api-1, namespace: shop}
spec: {node: nm-node1, addresses: [10.200.1.10]}
`,
    );
    const res = await nm(['apply', '-f', file]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('nothing was applied');
    expect(res.stderr).toContain('Workload shop/api-1 is invalid: spec.addresses[0]: 10.200.1.10 is already an address of Workload shop/web-1');
    const get = await nm(['get', 'svc', 'api', '-n', 'shop']);
    expect(get.code).toBe(1);
    expect(get.stderr).toContain('Service shop/api not found');
    const typo = await nm(['apply', '-f', '-'], {
      stdin: 'apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 80}], selecter: {a: b}}\n',
    });
    expect(typo.stderr).toContain('Service default/x is invalid: spec.selecter: unknown field');
  });

  it('applies from stdin into the namespace given by -n', async () => {
    const res = await nm(['apply', '-n', 'shop', '-f', '-'], {
      stdin: '{"apiVersion":"v1","kind":"Service","metadata":{"name":"api"},"spec":{"ports":[{"port":81}]}}',
    });
    expect(res.stdout).toBe('service/api created\n');
    expect((await nm(['get', 'svc', 'api', '-n', 'shop', '-o', 'json'])).stdout).toContain('"namespace": "shop"');
  });

  it('enrolls and unenrolls namespaces, creating them when needed', async () => {
    expect((await nm(['namespace', 'enroll', 'payments'])).stdout).toBe('namespace/payments enrolled (nodemesh.io/dataplane-mode=ambient)\n');
    expect((await nm(['namespace', 'enroll', 'payments'])).stdout).toBe('namespace/payments is already enrolled\n');
    expect((await nm(['get', 'ns', 'payments'])).stdout).toMatch(/payments\s+ambient/);
    expect((await nm(['namespace', 'unenroll', 'payments'])).stdout).toBe('namespace/payments unenrolled\n');
    expect((await nm(['get', 'ns', 'payments'])).stdout).toMatch(/payments\s+<none>/);
    expect((await nm(['namespace', 'unenroll', 'nowhere'])).stdout).toBe('namespace/nowhere does not exist; nothing to unenroll\n');
    expect((await nm(['namespace', 'join', 'x'])).code).toBe(2);
  });

  it('deletes by name and by file', async () => {
    expect((await nm(['delete', 'svc', 'api', '-n', 'shop'])).stdout).toBe('service "api" deleted from shop\n');
    const again = await nm(['delete', 'svc', 'api', '-n', 'shop']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('Service shop/api not found');
    expect((await nm(['delete', 'svc', 'api', '-n', 'shop', '--ignore-not-found'])).code).toBe(0);
    const byFile = await nm(['delete', '-f', join(fixtures, '40-waypoint.yaml')]);
    expect(byFile.stdout).toBe('gateway "waypoint" deleted from shop\nhttproute "web" deleted from shop\n');
  });

  it('refuses a wrong token and says how to reach a control plane that is not there', async () => {
    const bad = await nm(['get', 'svc'], { env: { NODEMESH_TOKEN: 'wrong' } });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/bearer token/);
    const tokenFile = join(dataDir, 'token');
    expect((await nm(['get', 'svc', '--token-file', tokenFile, '--data-dir', '/nonexistent'])).code).toBe(0);
    const noServer = await nm(['get', 'svc', '--server', 'http://127.0.0.1:1']);
    expect(noServer.stderr).toMatch(/cannot reach the control plane at http:\/\/127\.0\.0\.1:1 .*nodemesh control/);
    const noToken = await nm(['get', 'svc', '--data-dir', '/nonexistent-nm-dir']);
    expect(noToken.stderr).toMatch(/cannot read the API token from \/nonexistent-nm-dir\/token/);
  });

  it('get --watch prints the listing, then each change, and exits on SIGINT', async () => {
    const child = spawn(process.execPath, [cliEntry, 'get', 'svc', '-n', 'shop', '--watch'], {
      env: { ...process.env, NODEMESH_SERVER: serverURL, NODEMESH_DATA_DIR: dataDir, NODEMESH_TOKEN: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const waitFor = (re: RegExp) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${re} in get --watch output within 10 s:\n${out}`)), 10_000);
        const check = () => {
          if (re.test(out)) {
            clearTimeout(timer);
            child.stdout.off('data', check);
            resolve();
          }
        };
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          check();
        });
        check();
      });
    try {
      await waitFor(/^EXISTING\s+service\/web -n shop \(revision \d+\)$/m);
      await nm(['apply', '-n', 'shop', '-f', '-'], {
        stdin: '{"apiVersion":"v1","kind":"Service","metadata":{"name":"watched"},"spec":{"ports":[{"port":83}]}}',
      });
      await nm(['delete', 'svc', 'watched', '-n', 'shop']);
      await waitFor(/^DELETED\s+service\/watched -n shop/m);
      expect(out).toMatch(/^ADDED\s+service\/watched -n shop \(revision \d+\)\nDELETED/m);
    } finally {
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGINT');
      expect(await exited).toBe(0);
    }
  });

  it('keeps everything across a clean restart and across SIGKILL', async () => {
    const before = (await nm(['get', 'wl', '-A', '-o', 'json'])).stdout;
    const token = readFileSync(join(dataDir, 'token'), 'utf8');
    await stop(server, 'SIGTERM');
    server = await startControl();
    expect((await nm(['get', 'wl', '-A', '-o', 'json'])).stdout).toBe(before);
    expect(readFileSync(join(dataDir, 'token'), 'utf8')).toBe(token);
    await nm(['apply', '-n', 'shop', '-f', '-'], {
      stdin: '{"apiVersion":"v1","kind":"Service","metadata":{"name":"after-restart"},"spec":{"ports":[{"port":82}]}}',
    });
    await stop(server, 'SIGKILL');
    server = await startControl(); // takes over the dead process's lock
    expect((await nm(['get', 'svc', 'after-restart', '-n', 'shop', '-o', 'name'])).stdout).toBe('service/after-restart\n');
  });
});

describe('the CLI itself: help, version, usage errors, completion', () => {
  it("'nodemesh' alone prints every command with its summary and exits 0", async () => {
    const res = await nm([]);
    expect(res.code).toBe(0);
    for (const cmd of ['apply', 'get', 'lab', 'waypoint', 'version', 'completion', 'control', 'node-proxy']) {
      expect(res.stdout).toMatch(new RegExp(`^  ${cmd}\\s+\\S.*$`, 'm'));
    }
    // every command listed carries a summary: a command without one prints its bare name
    const listed = res.stdout
      .slice(res.stdout.indexOf('commands:\n'))
      .split('\n')
      .filter((l) => /^  \S/.test(l));
    expect(listed.length).toBeGreaterThan(15);
    expect(listed.filter((l) => !/^  \S+\s{2,}\S/.test(l))).toEqual([]);
  });

  it(
    "every command answers '--help' with its usage and exits 0",
    async () => {
      const names = (await nm([])).stdout
        .split('\n')
        .filter((l) => /^  \S/.test(l))
        .map((l) => l.trim().split(/\s+/)[0]!);
      // six CLIs at a time: ~22 node start-ups on a loaded 2-core machine
      for (let i = 0; i < names.length; i += 6) {
        const answers = await Promise.all(names.slice(i, i + 6).map(async (n) => ({ n, res: await nm([n, '--help']) })));
        for (const { n, res } of answers) {
          expect(res.code, `${n} --help: ${res.stderr}`).toBe(0);
          expect(res.stdout, n).toMatch(new RegExp(`^usage: nodemesh ${n}\\b`, 'm'));
        }
      }
      // 22 node start-ups took 91 s at load 19 (a VM beside the unit tier): the limit follows the machine.
    },
    scaled(90_000),
  );

  it('version prints the client and the reachable control plane, both this build', async () => {
    const res = await nm(['version']);
    expect(res.code).toBe(0);
    const client = /^client: nodemesh (\S+) \(commit (\S+), node v[\d.]+\)$/m.exec(res.stdout);
    const server = /^server: nodemesh (\S+) \(commit (\S+), node v[\d.]+\)$/m.exec(res.stdout);
    expect(client, res.stdout + res.stderr).not.toBeNull();
    expect(server, res.stdout + res.stderr).not.toBeNull();
    expect(server![1]).toBe(client![1]);
    expect(server![2]).toBe(client![2]);
    const json = JSON.parse((await nm(['version', '-o', 'json'])).stdout) as { client: { version: string }; server?: { version: string } };
    expect(json.server?.version).toBe(json.client.version);
  });

  it('version with no control plane reachable says so and still exits 0', async () => {
    const res = await nm(['version'], { env: { NODEMESH_SERVER: 'http://127.0.0.1:9' } });
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^client: nodemesh /m);
    expect(res.stdout).toMatch(/^server: not reachable \(.+\)$/m);
  });

  it('a bad flag is a usage error naming the command and its help, exit 2', async () => {
    const unknown = await nm(['get', 'svc', '--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe("nodemesh: get: unknown option --bogus; see 'nodemesh get --help'\n");
    const missing = await nm(['lab', 'status', '--lab']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe("nodemesh: lab: option --lab needs a value; see 'nodemesh lab --help'\n");
    const sub = await nm(['waypoint', 'frobnicate']);
    expect(sub.code).toBe(2);
    expect(sub.stderr).toMatch(/unknown subcommand 'frobnicate'/);
    expect((await nm(['waypoint', '--help'])).stdout).toMatch(/^  apply\s+create or update a waypoint Gateway/m);
    const format = await nm(['--log-format', 'yaml', 'version', '--client']);
    expect(format.code).toBe(2);
    expect(format.stderr).toBe("nodemesh: --log-format must be json or text, got 'yaml'\n");
  });

  it('completion: a valid bash script, and candidates for commands and subcommands', async () => {
    const script = await nm(['completion', 'bash']);
    expect(script.code).toBe(0);
    const check = spawnSync('bash', ['-n'], { input: script.stdout });
    expect(check.status, check.stderr?.toString()).toBe(0);
    expect((await nm(['completion', 'zsh'])).stdout).toMatch(/^#compdef nodemesh/);
    expect((await nm(['__complete', '--', 'wa'])).stdout).toBe('waypoint\n');
    expect((await nm(['__complete', 'lab', '--', 'd'])).stdout).toBe('down\n');
    expect((await nm(['completion', 'fish'])).code).toBe(2);
  });
});

describe('analyze and proxy-status against a running control plane', () => {
  it('analyze names a route whose Service was deleted (exit 1) and is clean of it once the route is gone', async () => {
    const temp = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'temp' }, spec: { selector: { app: 'temp' }, ports: [{ port: 80 }] } };
    const route = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'dangling' },
      spec: { parentRefs: [{ name: 'temp' }], rules: [{ backendRefs: [{ name: 'temp', port: 80 }] }] },
    };
    expect((await nm(['apply', '-n', 'shop', '-f', '-'], { stdin: [temp, route].map((d) => JSON.stringify(d)).join('\n---\n') })).code).toBe(0);
    expect((await nm(['delete', 'svc', 'temp', '-n', 'shop'])).code).toBe(0);
    const bad = await nm(['analyze']);
    expect(bad.code, bad.stderr).toBe(1);
    expect(bad.stdout).toMatch(/^Error\s+NM0101\s+HTTPRoute\/shop\/dangling\s+parentRef Service shop\/temp does not exist/m);
    expect(bad.stdout).toMatch(/^Error\s+NM0102\s+HTTPRoute\/shop\/dangling\s+rules\[0\] backendRef Service shop\/temp does not exist/m);
    const json = JSON.parse((await nm(['analyze', '-o', 'json'])).stdout) as { code: string; resource: string }[];
    expect(json.filter((f) => f.resource === 'HTTPRoute/shop/dangling').map((f) => f.code)).toEqual(['NM0101', 'NM0102']);
    await nm(['delete', 'httproute', 'dangling', '-n', 'shop']);
    const after = JSON.parse((await nm(['analyze', '-o', 'json'])).stdout) as { resource: string }[];
    expect(after.filter((f) => f.resource === 'HTTPRoute/shop/dangling')).toEqual([]);
  });

  it('proxy-status with no proxy connected says so', async () => {
    const res = await nm(['proxy-status']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe('no proxies connected\n');
  });
});
