// Loggers write to fd 2, so each case runs the built logger (dist/) in a child process and reads
// what it wrote there.
import { spawnSync } from 'node:child_process';
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

  it('refuses an unknown format with a message naming the variable and the flag', () => {
    expect(logFormat({})).toBe('json');
    expect(() => logFormat({ NODEMESH_LOG_FORMAT: 'xml' })).toThrow(/NODEMESH_LOG_FORMAT \(or --log-format\) must be json or text, got "xml"/);
  });
});
