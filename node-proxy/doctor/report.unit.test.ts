import { describe, expect, it } from 'vitest';
import { buildReport, formatReport, missingMessage, type ProbeOutcome } from './report';
import { CAPTURE_REQUIREMENTS, compareKernel, netnsCookieOutcome } from './requirements';

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

  it('lists an absent optional feature (the same-node fast path) without failing, and says what the node proxy does without it', () => {
    const outcomes = allPresent();
    outcomes.set('helper.get_netns_cookie.sk_msg', { present: false });
    const r = buildReport('5.10.0-21-amd64', CAPTURE_REQUIREMENTS, outcomes);
    expect(r.ok).toBe(true);
    expect(r.missing).toEqual([]);
    expect(r.absentOptional.map((c) => c.id)).toEqual(['helper.get_netns_cookie.sk_msg']);
    const text = formatReport(r);
    expect(text).not.toContain('MISSING');
    expect(text).toContain('absent   bpf_get_netns_cookie in sk_msg');
    expect(text).toContain('since Linux 5.15; optional: without it same-node connections are spliced by the node proxy');
    expect(text).toContain('all capture requirements are present');
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

describe('netns cookie from user space', () => {
  const cookieReq = CAPTURE_REQUIREMENTS.find((r) => r.id === 'netns_cookie.user_space')!;

  it('needs only the 5.7 probe, not SO_NETNS_COOKIE (5.14)', () => {
    expect(cookieReq.minKernel).toBe('5.7');
    expect(cookieReq.what).toContain('SO_NETNS_COOKIE (5.14) or the cgroup/bind4 probe (5.7)');
    // nothing capture needs is newer than the floor; only optional features (the same-node fast path) are
    expect(CAPTURE_REQUIREMENTS.some((r) => !r.optional && compareKernel(r.minKernel, '5.10') > 0)).toBe(false);
  });

  it('uses SO_NETNS_COOKIE where the kernel has it', () => {
    expect(netnsCookieOutcome({ sockopt: true, bindProbe: true, forceBpf: false })).toEqual({ present: true, path: 'sockopt', detail: 'via SO_NETNS_COOKIE' });
  });

  it('is present on 5.10–5.13 through the bind4 probe, and says so', () => {
    const o = netnsCookieOutcome({ sockopt: 'ENOPROTOOPT', bindProbe: true, forceBpf: false });
    expect(o.present).toBe(true);
    expect(o.path).toBe('bpf');
    expect(o.detail).toContain('cgroup/bind4 probe');
    expect(o.detail).toContain('SO_NETNS_COOKIE: ENOPROTOOPT');
    const outcomes = allPresent();
    outcomes.set(cookieReq.id, o);
    const r = buildReport('5.10.0-21-amd64', CAPTURE_REQUIREMENTS, outcomes);
    expect(r.ok).toBe(true);
    expect(formatReport(r)).toContain('cgroup/bind4 probe program');
  });

  it('names the probe when NODEMESH_NETNS_COOKIE=bpf forces it', () => {
    expect(netnsCookieOutcome({ sockopt: true, bindProbe: true, forceBpf: true })).toMatchObject({ present: true, path: 'bpf' });
    expect(netnsCookieOutcome({ sockopt: true, bindProbe: 'EPERM', forceBpf: true }).present).toBe(false);
  });

  it('is missing only when both fail, with both reasons and the 5.7 release', () => {
    const o = netnsCookieOutcome({ sockopt: 'ENOPROTOOPT', bindProbe: 'ENOENT', forceBpf: false });
    expect(o.present).toBe(false);
    const outcomes = allPresent();
    outcomes.set(cookieReq.id, o);
    const msg = missingMessage(buildReport('5.10', CAPTURE_REQUIREMENTS, outcomes));
    expect(msg).toContain('(since Linux 5.7; SO_NETNS_COOKIE: ENOPROTOOPT; cgroup/bind4 probe: ENOENT)');
    expect(msg).toContain('Linux >= 5.10');
  });
});
