// Loggers write to fd 2, so each case runs the built logger (dist/) in a child process and reads
// what it wrote there.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { logFormat } from './log';
import { projectRoot } from './paths';

function logged(env: Record<string, string>): string {
  const script = `require(${JSON.stringify(join(projectRoot, 'dist', 'common', 'log.js'))}).createLogger('demo').info({ workload: 'web-1' }, 'enrolled')`;
  const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stderr;
}

/** Runs `script` (node -e) with its stderr going to a file (passed as argv[1]); its stdout as JSON, and the file's text. */
function runLoggingToFile<T>(script: string): { result: T; logged: string } {
  const dir = mkdtempSync(join(tmpdir(), 'nm-log-'));
  try {
    const file = join(dir, 'err.log');
    const fd = openSync(file, 'w');
    const r = spawnSync(process.execPath, ['-e', script, file], { stdio: ['ignore', 'pipe', fd], encoding: 'utf8' });
    closeSync(fd);
    expect(r.status, r.stdout).toBe(0);
    return { result: JSON.parse(r.stdout) as T, logged: readFileSync(file, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const ISO = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/;

describe('log format', () => {
  it('json (the default): one object per line with an ISO 8601 UTC time', () => {
    const line = JSON.parse(logged({ NODEMESH_LOG_FORMAT: 'json' }).trim()) as Record<string, unknown>;
    expect(line).toMatchObject({ component: 'demo', msg: 'enrolled', workload: 'web-1', level: 30 });
    expect(line.time).toMatch(new RegExp(`^${ISO.source}$`));
  });

  it('text: one human-readable line with the ISO time, level, message and fields', () => {
    const text = logged({ NODEMESH_LOG_FORMAT: 'text' });
    expect(text.split('\n')[0]).toMatch(new RegExp(`^\\[${ISO.source}\\] INFO.*enrolled`));
    expect(text.split('\n')[0]).toMatch(/"workload":"web-1"/);
  });

  it('sync: false: lines are written together, within BATCH_FLUSH_MS, and none is lost at exit', () => {
    const log = JSON.stringify(join(projectRoot, 'dist', 'common', 'log.js'));
    const script = `
      const { createLogger, BATCH_FLUSH_MS } = require(${log});
      const fs = require('node:fs');
      const l = createLogger('demo', 'info', 'json', { sync: false });
      l.info({ n: 0 }, 'first');
      const t0 = Date.now();
      // the line is buffered: written by the periodic flush, not at once
      const size = () => fs.fstatSync(2).size;
      const before = size();
      const poll = setInterval(() => {
        if (size() === before && Date.now() - t0 < 2000) return;
        clearInterval(poll);
        process.stdout.write(JSON.stringify({ writtenAfterMs: Date.now() - t0, max: BATCH_FLUSH_MS }));
        for (let i = 1; i <= 500; i++) l.info({ n: i }, 'more');
        process.exit(0);
      }, 5);`;
    const { result: t, logged } = runLoggingToFile<{ writtenAfterMs: number; max: number }>(script);
    // held back (not one write per line), then written by the flush timer
    expect(t.writtenAfterMs).toBeGreaterThanOrEqual(t.max / 2);
    expect(t.writtenAfterMs).toBeLessThan(t.max + 1000);
    const lines = logged
      .trim()
      .split('\n')
      .map((x) => JSON.parse(x) as { n: number });
    expect(lines.map((x) => x.n)).toEqual(Array.from({ length: 501 }, (_, i) => i));
  });

  it('sync: false: the tail of a burst is written soon after, with no later line to push it out', () => {
    // a burst keeps a write in flight when the flush timer fires; what is left below the buffer
    // size after that write must still be written (not held until the next line or the exit)
    const log = JSON.stringify(join(projectRoot, 'dist', 'common', 'log.js'));
    const script = `
      const { createLogger } = require(${log});
      const fs = require('node:fs');
      const l = createLogger('demo', 'info', 'json', { sync: false });
      const N = 3000;
      for (let i = 0; i < N; i++) l.info({ n: i, pad: 'x'.repeat(4000) }, 'burst');
      const t0 = Date.now();
      const poll = setInterval(() => {
        const lines = fs.readFileSync(process.argv[1], 'utf8').split('\\n').filter(Boolean).length;
        if (lines < N && Date.now() - t0 < 3000) return;
        clearInterval(poll);
        process.stdout.write(JSON.stringify({ lines, ms: Date.now() - t0 }));
        process.exit(0);
      }, 20);`;
    const { result } = runLoggingToFile<{ lines: number; ms: number }>(script);
    expect(result.lines).toBe(3000); // before the exit's flush
  });

  it('refuses an unknown format with a message naming the variable and the flag', () => {
    expect(logFormat({})).toBe('json');
    expect(() => logFormat({ NODEMESH_LOG_FORMAT: 'xml' })).toThrow(/NODEMESH_LOG_FORMAT \(or --log-format\) must be json or text, got "xml"/);
  });
});
