import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { cliEntry } from '../../common/paths';
import { kernelAtLeast } from '../../test/support/kernel';
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
    expect(out).not.toMatch(/^ {2}MISSING /m);
    // every required check present; the optional ones (the same-node fast path) present from the
    // release that has them, and before it reported absent with what the node proxy does instead
    const present = out.match(/^ {2}present /gm) ?? [];
    const absent = out.match(/^ {2}absent {3}.*optional: without it /gm) ?? [];
    expect(present.length + absent.length).toBe(CAPTURE_REQUIREMENTS.length);
    const since = (v: string) => v.split('.').map(Number) as [number, number];
    const optionalAbsentHere = CAPTURE_REQUIREMENTS.filter((r) => r.optional && !kernelAtLeast(...since(r.minKernel)));
    expect(absent).toHaveLength(optionalAbsentHere.length);
    for (const r of optionalAbsentHere) expect(out).toContain(`absent   ${r.what}`);
    const json = JSON.parse(execFileSync(process.execPath, [cliEntry, 'doctor', '--json'], { encoding: 'utf8' })) as { ok: boolean };
    expect(json.ok).toBe(true);
    // the report names the path in use: SO_NETNS_COOKIE from Linux 5.14, the bind4 probe before
    if (kernelAtLeast(5, 14)) expect(out).toMatch(/present {2}netns cookie from user space.*\[via SO_NETNS_COOKIE\]/);
    else expect(out).toMatch(/present {2}netns cookie from user space.*\[via the cgroup\/bind4 probe program.*; SO_NETNS_COOKIE: ENOPROTOOPT\]/);
  });

  it('with SO_NETNS_COOKIE set aside (NODEMESH_NETNS_COOKIE=bpf, as on 5.10–5.13) the bind4 probe meets the requirement', () => {
    const out = execFileSync(process.execPath, [cliEntry, 'doctor'], { encoding: 'utf8', env: { ...process.env, NODEMESH_NETNS_COOKIE: 'bpf' } });
    expect(out).toContain('all capture requirements are present');
    expect(out).toMatch(/present {2}netns cookie from user space.*\[via the cgroup\/bind4 probe program.*forced by NODEMESH_NETNS_COOKIE=bpf\]/);
  });
});
