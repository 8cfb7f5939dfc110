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

/** Runs one line as a user's shell would (`sh -c LINE`, the caller's environment), bounded in time. */
function shell(line: string, timeoutMs: number): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', line], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => (child.kill('SIGKILL'), reject(new Error(`'${line}' did not finish within ${timeoutMs} ms`))), timeoutMs);
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

const explain = (line: string, r: Ran): string => `'${line}' exited ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

privilegedDescribe('lab', 'the hints lab up prints run as pasted', () => {
  afterAll(async () => {
    rmSync(binDir, { recursive: true, force: true });
    await cli(['lab', 'down', '--lab', LAB], 120_000);
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
          expect(status.stdout).not.toMatch(/NACKED|STALE/);
          const analysis = await shell(`nodemesh analyze --lab ${LAB}`, 30_000);
          expect(analysis.code, explain('analyze', analysis)).toBe(0);
          expect(analysis.stdout).toMatch(/^no problems found in \d+ resources$/m);
          const version = await shell(`nodemesh version --lab ${LAB}`, 30_000);
          expect(version.stdout).toMatch(/^server: nodemesh \S+ \(commit /m);
        }
        const r = await shell(down, 120_000);
        expect(r.code, explain(down, r)).toBe(0);
        expect(await leftovers(LAB)).toEqual([]);
      },
      scaled(420_000),
    );
  }
});
