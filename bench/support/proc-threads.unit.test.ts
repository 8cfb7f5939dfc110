import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { parseThreadStatus, readThreads, threadGroup, threadUse, type ThreadSample } from './proc-threads';

describe('per-thread CPU and wake-ups', () => {
  it('reads the name and both kinds of context switch from a thread status', () => {
    const status = 'Name:\tnm-hbone-1\nUmask:\t0022\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t1234\nnonvoluntary_ctxt_switches:\t56\n';
    expect(parseThreadStatus(status)).toEqual({ name: 'nm-hbone-1', voluntary: 1234, involuntary: 56 });
  });

  it('groups threads: the main thread by its id, the addon threads by name, the rest as other', () => {
    expect(threadGroup(100, 100, 'node')).toBe('main');
    expect(threadGroup(100, 101, 'nm-hbone-0')).toBe('engine');
    expect(threadGroup(100, 102, 'nm-splice')).toBe('splice');
    expect(threadGroup(100, 103, 'libuv-worker')).toBe('other');
  });

  it('adds up what each group used between two samples; a thread born meanwhile counts from zero', () => {
    const t = (tid: number, name: string, cpuNs: number, voluntary: number): ThreadSample => ({
      tid,
      name,
      cpuNs,
      waitNs: cpuNs / 10,
      voluntary,
      involuntary: 0,
    });
    const before = [t(10, 'node', 1e9, 100), t(11, 'nm-hbone-0', 2e9, 500), t(12, 'nm-hbone-1', 1e9, 300), t(13, 'gone', 5e9, 9)];
    const after = [t(10, 'node', 1.5e9, 110), t(11, 'nm-hbone-0', 2.25e9, 1500), t(12, 'nm-hbone-1', 1.25e9, 1300), t(14, 'libuv-worker', 1e8, 3)];
    const use = threadUse(10, before, after);
    expect(use.main).toEqual({ cpuS: 0.5, waitS: 0.05, wakeups: 10, involuntary: 0, threads: 1 });
    expect(use.engine).toEqual({ cpuS: 0.5, waitS: 0.05, wakeups: 2000, involuntary: 0, threads: 2 });
    expect(use.other).toEqual({ cpuS: 0.1, waitS: 0.01, wakeups: 3, involuntary: 0, threads: 1 });
    expect(use.splice.threads).toBe(0);
  });

  it('sees this process: a worker thread that sleeps and wakes shows its wake-ups', async () => {
    const w = new Worker('const { parentPort } = require("node:worker_threads"); parentPort.on("message", (m) => parentPort.postMessage(m));', { eval: true });
    await new Promise((r) => w.once('online', r));
    const before = readThreads(process.pid);
    for (let i = 0; i < 20; i++) {
      w.postMessage(i);
      await new Promise((r) => w.once('message', r));
    }
    const after = readThreads(process.pid);
    await w.terminate();
    expect(after.some((t) => t.tid === process.pid)).toBe(true);
    const use = threadUse(process.pid, before, after);
    // the worker slept between messages: at least one wake-up per message, spread over its threads
    expect(use.other.wakeups + use.main.wakeups).toBeGreaterThanOrEqual(20);
    expect(use.main.cpuS).toBeGreaterThan(0);
  });
});
