// holdMallocThresholds (native/src/fd.cc) against glibc's dynamic thresholds, in a child process
// (the setting is process-wide): a thread frees a 1 MiB block (mmapped), then allocates and frees
// six 256 KiB buffers. Left dynamic, the first free lifts the mmap threshold to 1 MiB and the trim
// threshold to 2 MiB, so the six come from the thread's arena and 1.5 MiB stays there, free but
// kept (malloc_trim would not return a thread arena's top either); held at 128 KiB, they are
// mmapped and unmapped, and the arenas keep nothing of them.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { addonPath } from './binding';
import { mallocThresholdFromEnv, MALLOC_THRESHOLD_BYTES } from '../node-proxy/mesh/malloc-thresholds';

const CHILD = `
const { Worker } = require('node:worker_threads');
const addon = require(process.argv[1]);
const mode = process.argv[2];
if (mode === 'hold' && !addon.holdMallocThresholds(128 * 1024)) throw new Error('mallopt refused');
const w = new Worker(\`
  const { parentPort, workerData } = require('node:worker_threads');
  const addon = require(workerData);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  async function settle(pred) {
    for (let i = 0; i < 300; i++) { gc(); await sleep(10); if (pred(addon.mallocStats())) return true; }
    return false;
  }
  (async () => {
    let big = Buffer.allocUnsafeSlow(1 << 20).fill(1);
    const m0 = addon.mallocStats();
    big = null;
    await settle((s) => s.mmappedBytes + s.inUseBytes <= m0.mmappedBytes + m0.inUseBytes - (1 << 19));
    const before = addon.mallocStats();
    let keep = [];
    for (let i = 0; i < 6; i++) keep.push(Buffer.allocUnsafeSlow(256 << 10).fill(2));
    const during = addon.mallocStats();
    keep = null;
    const freed = await settle((s) => s.inUseBytes + s.mmappedBytes <= during.inUseBytes + during.mmappedBytes - (3 << 19) + (64 << 10));
    const after = addon.mallocStats();
    parentPort.postMessage({ freed, before, during, after });
  })();
\`, { eval: true, workerData: process.argv[1] });
w.on('message', (m) => { console.log(JSON.stringify(m)); process.exit(0); });
w.on('error', (e) => { console.error(e); process.exit(1); });
`;

interface Stats {
  arenaBytes: number;
  inUseBytes: number;
  freeBytes: number;
  mmappedBytes: number;
}
interface Run {
  freed: boolean;
  before: Stats;
  during: Stats;
  after: Stats;
}

function run(mode: 'hold' | 'dynamic'): Run {
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', CHILD, addonPath, mode], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`child (${mode}) exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as Run;
}

const MiB = 1 << 20;
const glibc = process.platform === 'linux' && (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime;

describe.skipIf(!glibc)('malloc thresholds (glibc)', () => {
  it("left dynamic, a thread's arena keeps the freed 256 KiB buffers after a larger block was freed", () => {
    const r = run('dynamic');
    expect(r.freed, JSON.stringify(r)).toBe(true);
    expect(r.during.mmappedBytes - r.before.mmappedBytes, JSON.stringify(r)).toBeLessThan(MiB / 2); // from the arena
    expect(r.after.freeBytes - r.before.freeBytes, JSON.stringify(r)).toBeGreaterThan(1.25 * MiB); // kept, free
  });

  it('held at 128 KiB, the buffers are mmapped and given back when freed', () => {
    const r = run('hold');
    expect(r.freed, JSON.stringify(r)).toBe(true);
    expect(r.during.mmappedBytes - r.before.mmappedBytes, JSON.stringify(r)).toBeGreaterThanOrEqual(1.5 * MiB);
    expect(r.after.freeBytes - r.before.freeBytes, JSON.stringify(r)).toBeLessThan(MiB / 4);
    expect(r.after.arenaBytes - r.before.arenaBytes, JSON.stringify(r)).toBeLessThan(MiB / 4);
    expect(r.after.mmappedBytes - r.before.mmappedBytes, JSON.stringify(r)).toBeLessThan(MiB / 4); // unmapped
  });
});

describe('NODEMESH_MALLOC_THRESHOLD', () => {
  it('defaults to 128 KiB, takes 0 (dynamic) and a size in range, refuses anything else', () => {
    expect(mallocThresholdFromEnv({})).toBe(MALLOC_THRESHOLD_BYTES);
    expect(mallocThresholdFromEnv({ NODEMESH_MALLOC_THRESHOLD: '' })).toBe(128 * 1024);
    expect(mallocThresholdFromEnv({ NODEMESH_MALLOC_THRESHOLD: '0' })).toBe(0);
    expect(mallocThresholdFromEnv({ NODEMESH_MALLOC_THRESHOLD: '65536' })).toBe(65536);
    for (const bad of ['-1', '100', '1.5', '64k', String(64 << 20)]) {
      expect(() => mallocThresholdFromEnv({ NODEMESH_MALLOC_THRESHOLD: bad })).toThrow(/NODEMESH_MALLOC_THRESHOLD=.*expected 0/);
    }
  });
});
