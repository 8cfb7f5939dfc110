import { describe, expect, it } from 'vitest';
import { addressBytes, captureEntries, CaptureConfigError, DIR_IN, DIR_OUT, parseCidr } from './entries';
import { planEnrolment, type EnrolmentRecord, type Observed } from './plan';
import type { CaptureWorkload } from './workload';

const wl = (name: string, over: Partial<CaptureWorkload> = {}): CaptureWorkload => ({
  name,
  namespace: 'default',
  netnsPath: `/run/netns/nm-t-${name}`,
  cgroupPath: `/sys/fs/cgroup/unified/nm-t/${name}`,
  addresses: ['10.200.1.2'],
  excludedOutboundPorts: [],
  excludedInboundPorts: [],
  excludedCidrs: [],
  ...over,
});
const rec = (w: CaptureWorkload, ino = 100, cg = 200): EnrolmentRecord => ({
  key: `${w.namespace}/${w.name}`,
  workload: w,
  netnsCookie: '4096',
  netnsInode: ino,
  cgroupId: cg,
  enrolledAt: '2024-01-01T00:00:00Z',
});
const alive = (): Observed => ({ netnsInode: 100, cgroupId: 200 });

describe('planEnrolment', () => {
  it('enrols new workloads and adopts unchanged ones after a restart', () => {
    const a = wl('a');
    const b = wl('b');
    const plan = planEnrolment([a, b], [rec(a)], alive);
    expect(plan.map((p) => [p.kind, 'workload' in p ? p.workload.name : ''])).toEqual([
      ['adopt', 'a'],
      ['enrol', 'b'],
    ]);
  });

  it('unenrols what is no longer selected, before anything else', () => {
    const a = wl('a');
    const b = wl('b');
    const plan = planEnrolment([b], [rec(a), rec(b)], alive);
    expect(plan[0]).toMatchObject({ kind: 'unenrol', record: { key: 'default/a' }, reason: 'no longer selected for capture' });
    expect(plan[1]).toMatchObject({ kind: 'adopt', workload: { name: 'b' } });
  });

  it('re-enrols a workload whose netns was recreated at the same path', () => {
    const a = wl('a');
    const plan = planEnrolment([a], [rec(a, 99)], alive);
    expect(plan.map((p) => p.kind)).toEqual(['unenrol', 'enrol']);
  });

  it('updates entries when only exclusions change, in any order', () => {
    const a = wl('a', { excludedOutboundPorts: [5432, 6379] });
    expect(planEnrolment([wl('a', { excludedOutboundPorts: [6379, 5432] })], [rec(a)], alive).map((p) => p.kind)).toEqual(['adopt']);
    expect(planEnrolment([wl('a', { excludedCidrs: ['10.0.0.0/8'] })], [rec(a)], alive).map((p) => p.kind)).toEqual(['update']);
  });

  it('skips a workload whose netns is missing and cleans up its old enrolment', () => {
    const a = wl('a');
    const plan = planEnrolment([a], [rec(a)], () => ({ cgroupId: 200 }));
    expect(plan).toMatchObject([
      { kind: 'unenrol', reason: `netns ${a.netnsPath} is gone` },
      { kind: 'skip', reason: `netns ${a.netnsPath} does not exist` },
    ]);
  });
});

describe('capture entries', () => {
  it('maps IPv4 into IPv6 and keeps IPv6 as is', () => {
    expect(Buffer.from(addressBytes('10.96.0.12')).toString('hex')).toBe('00000000000000000000ffff0a60000c');
    expect(Buffer.from(addressBytes('fd00::1')).toString('hex')).toBe('fd000000000000000000000000000001');
    expect(Buffer.from(addressBytes('::ffff:10.0.0.1')).toString('hex')).toBe('00000000000000000000ffff0a000001');
  });

  it('turns CIDRs into masked prefixes over the 16-byte form', () => {
    const c = parseCidr('10.96.7.9/16');
    expect(c.bits).toBe(112);
    expect(Buffer.from(c.addr).toString('hex')).toBe('00000000000000000000ffff0a600000');
    const v6 = parseCidr('fd00:1:2:3::/52');
    expect(v6.bits).toBe(52);
    expect(Buffer.from(v6.addr).toString('hex')).toBe('fd000001000200000000000000000000');
  });

  it('refuses bad settings with the setting named', () => {
    expect(() => parseCidr('10.0.0.0')).toThrow(/excluded CIDR '10.0.0.0' is not valid: missing \/prefix/);
    expect(() => parseCidr('10.0.0.0/33')).toThrow(CaptureConfigError);
    expect(() => captureEntries(wl('a', { excludedInboundPorts: [70000] }))).toThrow(/excluded inbound port 70000/);
  });

  it('lists excluded ports per direction, once each', () => {
    const e = captureEntries(wl('a', { excludedOutboundPorts: [5432, 5432], excludedInboundPorts: [9090] }));
    expect(e.ports).toEqual([
      { port: 5432, direction: DIR_OUT },
      { port: 9090, direction: DIR_IN },
    ]);
    expect(e.outboundPort).toBe(15001);
  });
});
