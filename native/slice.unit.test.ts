import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { describe, expect, it } from 'vitest';
import { readThreads } from '../bench/support/proc-threads';
import { binding } from './binding';
import { initNativeHbone, nativeHboneAvailable } from './hbone';
import { datapathSliceUs } from './slice';

describe('NODEMESH_DATAPATH_SLICE_US', () => {
  it('is the kernel’s own slice unless set, else whole microseconds the kernel accepts', () => {
    expect(datapathSliceUs(undefined)).toBe(0);
    expect(datapathSliceUs(' ')).toBe(0);
    expect(datapathSliceUs('0')).toBe(0);
    expect(datapathSliceUs('100')).toBe(100);
    expect(datapathSliceUs('100000')).toBe(100_000);
    for (const bad of ['99', '100001', '-100', '1.5', 'fast', '1e3'])
      expect(() => datapathSliceUs(bad)).toThrow(
        new RegExp(`NODEMESH_DATAPATH_SLICE_US=${bad.replace('.', '\\.')} is not a slice: use whole microseconds 100–100000`),
      );
  });
});

/** Linux ≥ 6.12: the fair scheduler takes a thread's sched_runtime as the slice it asks for. */
function customSlices(): boolean {
  const [major, minor] = release().split('.').map(Number);
  return (major ?? 0) > 6 || ((major ?? 0) === 6 && (minor ?? 0) >= 12);
}

const field = (text: string, name: string): number | undefined => {
  const m = new RegExp(`^${name.replace('.', '\\.')}\\s*:\\s*(\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
};

/** Whether this addon has the engine, without starting it (the test starts it with its own arguments). */
function hasEngine(): boolean {
  try {
    return typeof binding().hboneInit === 'function';
  } catch {
    return false;
  }
}

(hasEngine() ? describe : describe.skip)('the engine threads ask for the slice', () => {
  it('each engine thread asks for the slice it was given and keeps the process’s nice value', async () => {
    // this file's process starts the engine itself (vitest runs each file in a process of its own)
    initNativeHbone(2, 250);
    expect(nativeHboneAvailable()).toBe(true);
    // each thread names itself and asks for its slice as it starts
    const engine = (): ReturnType<typeof readThreads> => readThreads(process.pid).filter((t) => t.name.startsWith('nm-hbone'));
    for (const until = Date.now() + 5000; engine().length < 2 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 20));
    expect(engine().length).toBe(2);
    const niceOf = (tid: number): number => Number(readFileSync(`/proc/${process.pid}/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]);
    for (const t of engine()) {
      // sched_setattr also sets the nice value: a proxy started under nice stays there
      expect(niceOf(t.tid)).toBe(niceOf(process.pid));
      const sched = readFileSync(`/proc/${process.pid}/task/${t.tid}/sched`, 'utf8');
      const slice = field(sched, 'se.slice');
      if (customSlices() && slice !== undefined) expect(slice).toBe(250_000);
    }
  });
});
