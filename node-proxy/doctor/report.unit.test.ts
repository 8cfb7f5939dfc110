import { describe, expect, it } from 'vitest';
import { buildReport, formatReport, missingMessage, type ProbeOutcome } from './report';
import { CAPTURE_REQUIREMENTS, compareKernel } from './requirements';

const allPresent = (): Map<string, ProbeOutcome> => new Map(CAPTURE_REQUIREMENTS.map((r) => [r.id, { present: true }]));

describe('kernel versions', () => {
  it('compares releases numerically', () => {
    expect(compareKernel('5.10', '5.9')).toBe(1);
    expect(compareKernel('5.9', '5.10')).toBe(-1);
    expect(compareKernel('6.18.44-fc-v669', '5.10')).toBe(1);
    expect(compareKernel('5.10.0-21-amd64', '5.10')).toBe(0);
  });
});

describe('doctor report', () => {
  it('is ok when every requirement is present', () => {
    const r = buildReport('6.1.0', CAPTURE_REQUIREMENTS, allPresent());
    expect(r.ok).toBe(true);
    expect(r.missing).toEqual([]);
    expect(missingMessage(r)).toBe('');
    const text = formatReport(r);
    expect(text).not.toContain('MISSING');
    expect(text.split('\n')).toHaveLength(CAPTURE_REQUIREMENTS.length + 2);
  });

  it('names every missing piece with the release that has it and asks for the newest one', () => {
    const outcomes = allPresent();
    outcomes.set('prog.sk_lookup', { present: false, detail: 'EINVAL' });
    outcomes.set('btf.vmlinux', { present: false });
    const r = buildReport('5.4.0', CAPTURE_REQUIREMENTS, outcomes);
    expect(r.ok).toBe(false);
    expect(r.missing.map((m) => m.id)).toEqual(['btf.vmlinux', 'prog.sk_lookup']);
    expect(r.needKernel).toBe('5.10');
    const msg = missingMessage(r);
    expect(msg).toContain('BPF_PROG_TYPE_SK_LOOKUP (since Linux 5.9; EINVAL)');
    expect(msg).toContain('/sys/kernel/btf/vmlinux (since Linux 5.4)');
    expect(msg).toContain('Linux >= 5.10');
    const text = formatReport(r);
    expect(text).toContain('warning: this kernel is older than 5.10');
    expect(text.match(/MISSING/g)).toHaveLength(2);
  });

  it('treats a requirement nobody probed as missing', () => {
    const outcomes = allPresent();
    outcomes.delete('fs.cgroup2');
    const r = buildReport('6.1', CAPTURE_REQUIREMENTS, outcomes);
    expect(r.missing.map((m) => [m.id, m.detail])).toEqual([['fs.cgroup2', 'not probed']]);
  });
});
