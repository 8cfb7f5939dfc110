import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scaled } from '../../test/support/speed';
import { usageText, wantsHelp } from './args';

const root = join(__dirname, '..', '..');
const run = (script: string, args: string[]) =>
  spawnSync(process.execPath, [join(root, 'dist', 'bench', script), ...args], { encoding: 'utf8', timeout: scaled(30_000) });

describe('a benchmark’s command line', () => {
  it('names every option, with its default, in the usage', () => {
    expect(usageText('mesh', { seconds: { type: 'string', default: '3' }, profile: { type: 'string' }, child: { type: 'boolean' } })).toBe(
      'usage: npm run bench -- mesh [--seconds VALUE (default 3)] [--profile VALUE] [--child]',
    );
    expect(wantsHelp(['--rounds', '2', '-h'])).toBe(true);
    expect(wantsHelp(['--rounds', '2'])).toBe(false);
  });

  it('--help prints the options and exits 0 without running the benchmark', () => {
    const r = run('mesh.js', ['--help']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^usage: npm run bench -- mesh .*\[--seconds VALUE\]/);
    // the usage and where to read more, nothing of a run (no lab, no round)
    expect(r.stdout.trimEnd().split('\n')).toEqual([expect.stringMatching(/^usage: /), '(what each measures: the header of bench/mesh.ts)']);
  });

  it('an unknown option is refused with exit 2, the reason and the usage, and no stack trace', () => {
    const r = run('mesh.js', ['--bogus', '1']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("Unknown option '--bogus'");
    expect(r.stderr).toContain('usage: npm run bench -- mesh');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it(
    'size options (envoy-xds): --help, an unknown name and a value that is not a positive integer',
    () => {
      const help = run('envoy-xds.js', ['--help']);
      expect(help.status, help.stderr).toBe(0);
      expect(help.stdout).toMatch(/^usage: npm run bench -- envoy-xds .*\[--services VALUE \(default \d+\)\]/);
      const unknown = run('envoy-xds.js', ['--bogus', '1']);
      expect(unknown.status).toBe(2);
      expect(unknown.stderr).toContain("bench envoy-xds: unknown option '--bogus'");
      const bad = run('envoy-xds.js', ['--services', '0']);
      expect(bad.status).toBe(2);
      expect(bad.stderr).toContain("--services needs a positive integer, not '0'");
      for (const r of [unknown, bad]) {
        expect(r.stderr).toContain('usage: npm run bench -- envoy-xds');
        expect(r.stderr).not.toMatch(/\n\s+at /);
        expect(r.stdout).toBe(''); // nothing ran
      }
    },
    scaled(120_000),
  );

  it('npm run bench -- --help lists the benchmarks', () => {
    const r = run('main.js', ['--help']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/benchmarks: .*mesh.*waypoint/);
    expect(r.stdout).toContain('chaos and soak run only when named');
  });
});
