// What a newcomer does after the README's main command: types `nodemesh` in a new shell and pastes
// the hints `lab up` printed, one by one. Each must run as printed (through `sh -c`, with the PATH
// the set-up step prepared) and succeed; a detached command that cannot start is reported as a
// failure, with its log, instead of "started".
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { privilegedDescribe } from '../support/privileged';
import { cli, leftovers, repoRoot } from './support';
import { scaled } from '../support/speed';

const LAB = 'nmhint';

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

// The set-up step points /usr/local/bin/nodemesh at the checkout that ran it last. Where several
// checkouts share a machine, the lines run with this checkout's command first on the PATH — the
// very wrapper this checkout's set-up step writes (in CI, one clone: the same file).
const binDir = mkdtempSync(join(tmpdir(), 'nm-hints-bin-'));
writeFileSync(join(binDir, 'nodemesh'), `#!/bin/sh\nexec '${process.execPath}' '${join(repoRoot, 'dist', 'cli', 'main.js')}' "$@"\n`);
chmodSync(join(binDir, 'nodemesh'), 0o755);
const PATH = `${binDir}:${process.env.PATH ?? ''}`;

/**
 * Runs one line as a user's shell would (`sh -c LINE`, the caller's environment), bounded in time:
 * `timeoutMs` on the reference machine, scaled here (test/support/speed).
 */
function shell(line: string, timeoutMs: number): Promise<Ran> {
  const limit = scaled(timeoutMs);
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', line], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => (child.kill('SIGKILL'), reject(new Error(`'${line}' did not finish within ${limit} ms`))), limit);
    child.on('close', (code) => (clearTimeout(timer), resolve({ code: code ?? -1, stdout, stderr })));
  });
}

/** The hint lines `lab up` printed after "next:", as a user would copy them (comments included). */
function hints(upStdout: string): string[] {
  const at = upStdout.indexOf('the lab stays up; next:\n');
  expect(at, `lab up printed no hints:\n${upStdout}`).toBeGreaterThanOrEqual(0);
  return upStdout
    .slice(at)
    .split('\n')
    .slice(1)
    .filter((l) => l.startsWith('  '))
    .map((l) => l.trim());
}

/** Runs a CLI line that must succeed, returning its stdout. */
async function ok(line: string): Promise<string> {
  const r = await shell(line, 30_000);
  expect(r.code, explain(line, r)).toBe(0);
  return r.stdout;
}

/**
 * What istioctl users inspect, from the proxies themselves: every node proxy's view (node-config,
 * read from its admin endpoint inside its node's netns) and the waypoint's accepted xDS config and
 * certificate (proxy-config), on the demo.
 */
async function inspectLab(): Promise<void> {
  const workloads = await ok(`nodemesh node-config workloads --lab ${LAB}`);
  expect(workloads.split('\n')[0]).toMatch(/^PROXY\s+NAMESPACE\s+NAME\s+ADDRESS\s+NODE\s+WAYPOINT\s+PROTOCOL$/);
  for (const node of ['node1', 'node2'])
    expect(workloads).toMatch(new RegExp(`^${node}\\s+demo\\s+frontend-\\S+\\s+10\\.200\\.\\d+\\.\\d+\\s+node\\d\\s+\\S+\\s+HBONE$`, 'm'));
  const services = await ok(`nodemesh node-config services --node node2 --lab ${LAB}`);
  expect(services).toMatch(/^node2\s+demo\s+backend\s+10\.96\.\d+\.\d+\s+demo\/waypoint\s+[1-9]/m);
  expect(services).not.toMatch(/^node1\s/m);
  const policies = JSON.parse(await ok(`nodemesh node-config policies -o json --lab ${LAB}`)) as Record<string, Array<{ namespace: string }>>;
  expect(Object.keys(policies).sort()).toEqual(['node1', 'node2']);
  expect(policies.node1!.some((p) => p.namespace === 'demo')).toBe(true);
  const certs = await ok(`nodemesh node-config certificates --lab ${LAB}`);
  expect(certs).toMatch(/^node\d\s+demo\/\S+\s+spiffe:\/\/cluster\.local\/ns\/demo\/sa\/\S+\s+\S+\s+\d{4}-/m);
  expect(await ok(`nodemesh node-config connections --lab ${LAB}`)).toMatch(/^PROXY\s+WORKLOAD\s+DIRECTION\s+SOURCE/);
  const bad = await shell(`nodemesh node-config workloads --node node9 --lab ${LAB}`, 30_000);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain("no node 'node9'; the nodes are node1, node2");

  const listeners = await ok(`nodemesh proxy-config listeners --lab ${LAB}`);
  expect(listeners).toMatch(/^NAME\s+ADDRESS\s+TYPE\s+DESTINATION\s+VERSION$/m);
  expect(listeners).toMatch(/\sHTTP\s+Route: \S+/);
  expect(await ok(`nodemesh proxy-config routes waypoint --lab ${LAB}`)).toMatch(/outbound\|\d+\|\|backend-v1\.demo\.svc\.cluster\.local:90/);
  expect(await ok(`nodemesh proxy-config clusters demo/waypoint --lab ${LAB}`)).toMatch(/^outbound\|\d+\|\|backend\.demo\.svc\.cluster\.local\s+EDS/m);
  // endpoints name their workload (EDS metadata) and are reached over HBONE with the backend's identity
  expect(await ok(`nodemesh proxy-config endpoints --lab ${LAB}`)).toMatch(
    /^10\.200\.\d+\.\d+:\d+\s+HEALTHY\s+outbound\|\S+backend\S+\s+demo\/backend-\S+\s+HBONE 10\.200\.\d+\.\d+:15008\s+spiffe:\/\/cluster\.local\/ns\/demo\/sa\/backend$/m,
  );
  const secrets = await ok(`nodemesh proxy-config secrets --lab ${LAB}`);
  expect(secrets).toMatch(/^default\s+Cert Chain\s+spiffe:\/\/cluster\.local\/ns\/demo\/sa\/waypoint\s+[0-9a-f]+\s+\d{4}-/m);
  expect(secrets).toMatch(/^ROOTCA\s+CA\s+cluster\.local\s/m);
  expect(await ok(`nodemesh proxy-config secrets -o json --lab ${LAB}`)).not.toMatch(/PRIVATE KEY/);
  for (const help of ['node-config --help', 'proxy-config --help', 'node-config workloads --help', 'proxy-config secrets --help'])
    expect(await ok(`nodemesh ${help}`)).toMatch(/^usage: nodemesh/);
}

const explain = (line: string, r: Ran): string => `'${line}' exited ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

privilegedDescribe('lab', 'the hints lab up prints run as pasted', () => {
  afterAll(async () => {
    rmSync(binDir, { recursive: true, force: true });
    await cli(['lab', 'down', '--lab', LAB], scaled(120_000));
    expect(await leftovers(LAB)).toEqual([]);
  }, scaled(150_000));

  it('nodemesh is a command on the PATH, put there by the set-up step', async () => {
    const where = await new Promise<Ran>((resolve) => {
      const child = spawn('sh', ['-c', 'command -v nodemesh'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr: '' }));
    });
    expect(where.code, 'no nodemesh on the PATH: the set-up step (bash scripts/setup.sh) installs it').toBe(0);
    expect(readFileSync(where.stdout.trim(), 'utf8')).toContain('# nodemesh command, written by scripts/setup.sh');
    const help = await shell('nodemesh --help', 10_000);
    expect(help.code, explain('nodemesh --help', help)).toBe(0);
    expect(help.stdout).toContain('usage: nodemesh');
  });

  for (const variant of ['--no-demo', '']) {
    it(
      `after 'nodemesh lab up ${variant}', every printed hint runs as pasted`,
      async () => {
        const upLine = `nodemesh lab up --lab ${LAB} ${variant}`.trim();
        const up = await shell(upLine, 180_000);
        expect(up.code, explain(upLine, up)).toBe(0);
        const lines = hints(up.stdout);
        expect(lines.length).toBeGreaterThanOrEqual(3);
        expect(
          lines.every((l) => !l.includes('dist/cli/main.js')),
          lines.join('\n'),
        ).toBe(true);
        const down = lines.pop() as string;
        expect(down).toMatch(/^nodemesh lab down --lab nmhint\b/);
        for (const line of lines) {
          const r = await shell(line, 60_000);
          expect(r.code, explain(line, r)).toBe(0);
        }
        if (variant === '--no-demo') {
          // The echo server the hints started really serves: the client hint sent 1 MiB and got it back.
          // A detached command that cannot start is a failure with its log line, not "started".
          const bad = `nodemesh lab exec --lab ${LAB} --detach --name nm-missing pod1-1 -- nm-no-such-command`;
          const r = await shell(bad, 20_000);
          expect(r.code, explain(bad, r)).not.toBe(0);
          expect(r.stderr).toMatch(/nm-no-such-command/);
          expect(r.stderr).toMatch(/not found/);
          expect(r.stdout).toBe('');
        }
        if (variant === '') {
          // The mesh as istioctl users inspect it: every node proxy and the waypoint connected and in
          // sync, and nothing wrong with the demo's configuration.
          const status = await shell(`nodemesh proxy-status --lab ${LAB}`, 30_000);
          expect(status.code, explain('proxy-status', status)).toBe(0);
          for (const proxy of ['node-proxy~node1', 'node-proxy~node2', 'waypoint~']) expect(status.stdout).toContain(proxy);
          expect(status.stdout).not.toMatch(/NACKED|STALE|SENT/);
          // node proxies: delta streams of the workload API, each type acknowledged, by short name
          expect(status.stdout.split('\n')[0]).toMatch(/\bAUTHZ\b.*\bWDS\b/);
          for (const node of ['node1', 'node2'])
            expect(status.stdout).toMatch(new RegExp(`^node-proxy~${node}\\S*\\s+delta\\s+workload-api\\s+\\S+\\s+(-\\s+)*SYNCED\\b`, 'm'));
          const analysis = await shell(`nodemesh analyze --lab ${LAB}`, 30_000);
          expect(analysis.code, explain('analyze', analysis)).toBe(0);
          expect(analysis.stdout).toMatch(/^no problems found in \d+ resources$/m);
          const version = await shell(`nodemesh version --lab ${LAB}`, 30_000);
          expect(version.stdout).toMatch(/^server: nodemesh \S+ \(commit /m);
          await inspectLab();
        }
        const r = await shell(down, 120_000);
        expect(r.code, explain(down, r)).toBe(0);
        expect(await leftovers(LAB)).toEqual([]);
      },
      scaled(420_000),
    );
  }
});
