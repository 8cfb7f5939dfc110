import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { cliEntry } from '../../common/paths';
import { privilegedDescribe } from '../../test/support/privileged';
import { findCgroup2, readMounts } from './mounts';
import { probeKernel } from './probe';
import { CAPTURE_REQUIREMENTS } from './requirements';

privilegedDescribe('kernel', 'nodemesh doctor', () => {
  it('probes every requirement on this kernel, really attaching, and leaves nothing behind', () => {
    const report = probeKernel();
    expect(report.checks.map((c) => c.id)).toEqual(CAPTURE_REQUIREMENTS.map((r) => r.id));
    // this machine runs the whole mesh, so everything must be present; a miss names itself here
    expect(report.missing.map((m) => `${m.id}: ${m.detail ?? ''}`)).toEqual([]);
    const tag = `nm-doctor-${process.pid}`;
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(tag);
    expect(existsSync(join(findCgroup2(readMounts())!, tag))).toBe(false);
    expect(readdirSync('/sys/fs/bpf/nodemesh').filter((d) => d.startsWith('nm-doctor'))).toEqual([]);
  });

  it('the command prints every check and exits 0', () => {
    const out = execFileSync(process.execPath, [cliEntry, 'doctor'], { encoding: 'utf8' });
    expect(out).toContain('all capture requirements are present');
    expect(out.match(/^ {2}present /gm)).toHaveLength(CAPTURE_REQUIREMENTS.length);
    const json = JSON.parse(execFileSync(process.execPath, [cliEntry, 'doctor', '--json'], { encoding: 'utf8' })) as { ok: boolean };
    expect(json.ok).toBe(true);
  });
});
