// The kernel matrix as recorded. A lab tier takes 15-40 min per kernel under TCG, so it is run in
// parts (`vm test --files …`) and a matrix is assembled from several runs: every tier run writes
// the result of each test file it ran into <cache>/results/<kernel>.<tier>.json (the newest result
// per file wins, with the commit, kernel release, time and load average it ran at), and
// `nodemesh vm matrix` prints, per kernel x tier, how many of the tier's files have a result, the
// counts, the time, the commits, the files not run yet and every failing test. The pure parts
// (fileResults, mergeRun, formatMatrix) are unit tested; the store is plain JSON.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { VmTier } from './results';

/** One test file's outcome in one run. */
export interface FileResult {
  /** path relative to the checkout */
  file: string;
  passed: number;
  failed: number;
  skipped: number;
  /** "test > name" of each failed test, or the file's load error */
  failures: string[];
  /** the file's own running time (vitest's start to end) */
  seconds: number;
  /** the run was cut in this file after its tests had ended (or one failed): what ended (vm/file-report.ts cutFile) */
  cut?: string;
}

/** A file's result as recorded, with where and when it ran. */
export interface FileRecord extends FileResult {
  commit: string;
  release?: string;
  accel?: string;
  /** ISO time the run ended */
  at: string;
  /** the host's 1-minute load average at the run's start and end */
  load?: string;
}

export interface TierRecord {
  kernel: string;
  tier: VmTier;
  files: Record<string, FileRecord>;
}

interface JsonFile {
  name?: string;
  status?: string;
  message?: string;
  startTime?: number;
  endTime?: number;
  cut?: string;
  assertionResults?: Array<{ fullName?: string; title?: string; status?: string; failureMessages?: string[] }>;
}

/** Per-file results of a vitest `--reporter=json` report; paths relative to root. Pure. */
export function fileResults(json: string, root: string): FileResult[] {
  const report = JSON.parse(json) as { testResults?: JsonFile[] };
  return (report.testResults ?? []).map((f) => {
    const name = f.name ?? '?';
    const file = name.startsWith(root + '/') ? name.slice(root.length + 1) : name;
    const r: FileResult = { file, passed: 0, failed: 0, skipped: 0, failures: [], seconds: 0 };
    const tests = f.assertionResults ?? [];
    for (const t of tests) {
      if (t.status === 'passed') r.passed++;
      else if (t.status === 'failed') {
        r.failed++;
        // the name, then the first line of why (kept: a VM's console log is rewritten by its next run)
        const why = (t.failureMessages?.[0] ?? '').split('\n')[0]!.trim().slice(0, 400);
        r.failures.push(`${t.fullName ?? t.title ?? '?'}${why ? ` — ${why}` : ''}`);
      } else r.skipped++;
    }
    if (f.status === 'failed' && r.failed === 0) {
      // a file that failed to load, or in a beforeAll/afterAll hook (vitest then gives no message)
      r.failed = 1;
      const why = (f.message ?? '').split('\n').find((l) => l.trim() !== '');
      r.failures.push(why?.trim().slice(0, 400) ?? 'failed outside its tests (a beforeAll/afterAll hook?): the console log says why');
    }
    if (typeof f.startTime === 'number' && typeof f.endTime === 'number' && f.endTime >= f.startTime) r.seconds = (f.endTime - f.startTime) / 1000;
    if (typeof f.cut === 'string' && f.cut) r.cut = f.cut;
    return r;
  });
}

/** The record with a run's file results put in (each replacing that file's older result). Pure. */
export function mergeRun(rec: TierRecord, files: FileResult[], meta: Omit<FileRecord, keyof FileResult>): TierRecord {
  const out: TierRecord = { ...rec, files: { ...rec.files } };
  for (const f of files) out.files[f.file] = { ...f, ...meta };
  return out;
}

function recordPath(dir: string, kernel: string, tier: VmTier): string {
  return join(dir, `${kernel}.${tier}.json`);
}

export function loadRecord(dir: string, kernel: string, tier: VmTier): TierRecord {
  const p = recordPath(dir, kernel, tier);
  if (!existsSync(p)) return { kernel, tier, files: {} };
  try {
    const r = JSON.parse(readFileSync(p, 'utf8')) as TierRecord;
    return { kernel, tier, files: r.files ?? {} };
  } catch {
    return { kernel, tier, files: {} };
  }
}

export function saveRecord(dir: string, rec: TierRecord): void {
  mkdirSync(dir, { recursive: true });
  const p = recordPath(dir, rec.kernel, rec.tier);
  const tmp = `${p}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(rec, null, 2) + '\n');
  renameSync(tmp, p);
}

/**
 * Puts a run's results into the kernel's record under the kernel's lock (<dir>/<kernel>.lock), so
 * that two runs on one kernel ending together (two parts of a lab tier, or a lab and a kernel
 * tier) both keep their results: without it each loads the record, merges its own files and
 * writes, and the later write drops the other's files. The lock is held for the load-merge-save
 * only (milliseconds); a lock whose process is gone is taken over; one held longer than `waitMs`
 * is an error that names the file and its process, and nothing is written.
 */
export function updateRecord(dir: string, kernel: string, tier: VmTier, update: (rec: TierRecord) => TierRecord, o: { waitMs?: number } = {}): TierRecord {
  mkdirSync(dir, { recursive: true });
  const lock = join(dir, `${kernel}.lock`);
  acquireLock(lock, o.waitMs ?? 60_000);
  try {
    const rec = update(loadRecord(dir, kernel, tier));
    saveRecord(dir, rec);
    return rec;
  } finally {
    rmSync(lock, { force: true });
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The pid a lock file names, or undefined when it is gone or holds no pid. */
function lockHolder(lock: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(lock, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Creates `lock` holding this pid (O_EXCL), waiting while a live process holds it. */
function acquireLock(lock: string, waitMs: number): void {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx', 0o644);
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = lockHolder(lock);
    if (holder !== undefined && !alive(holder)) {
      breakStaleLock(lock, holder);
      continue;
    }
    // no pid yet: its holder is between creating and writing the file; wait like for a live one
    if (Date.now() >= deadline) {
      throw new Error(
        `the recorded results are locked by ${holder !== undefined ? `process ${holder}` : 'another process'} (${lock}) for over ${Math.round(waitMs / 1000)} s; ` +
          "this run's results were not recorded. If no `nodemesh vm` runs any more, remove the file.",
      );
    }
    sleepSync(50);
  }
}

/** Removes a lock left by a process that is gone; a fresh lock that took its place meanwhile is put back. */
function breakStaleLock(lock: string, stalePid: number): void {
  const aside = `${lock}.${process.pid}.stale`;
  try {
    renameSync(lock, aside);
  } catch {
    return; // someone else broke it first
  }
  if (lockHolder(aside) !== stalePid) {
    // between our read and the rename another process broke the stale lock and took it: give it back
    try {
      renameSync(aside, lock);
    } catch {
      // nothing more to do
    }
    return;
  }
  rmSync(aside, { force: true });
}

/** The checkout's test files of a tier (`*.<tier>.test.ts`, outside node_modules and dist), sorted. */
export function tierFiles(root: string, tier: VmTier): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name.startsWith('.') || e.name === 'node_modules' || e.name === 'dist') continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(`.${tier}.test.ts`)) out.push(relative(root, p));
    }
  };
  walk(root);
  return out.sort();
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

/**
 * The recorded matrix: a row per kernel and tier — files with a result of the tier's files, the
 * counts, the summed file time, the kernel release and the commits the results come from — then,
 * per row, the files not run yet and every failing test (with its commit). `all` maps a tier to
 * its test files in this checkout. Pure.
 */
export function formatMatrix(records: TierRecord[], all: Partial<Record<VmTier, string[]>>): string {
  const head = ['KERNEL', 'TIER', 'RESULT', 'FILES', 'PASSED', 'FAILED', 'SKIPPED', 'TIME', 'RELEASE', 'LOAD', 'COMMITS'];
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const rec of records) {
    const files = all[rec.tier] ?? [];
    const have = files.filter((f) => rec.files[f]);
    const got = have.map((f) => rec.files[f] as FileRecord);
    const sum = (k: 'passed' | 'failed' | 'skipped' | 'seconds'): number => got.reduce((a, r) => a + r[k], 0);
    const missing = files.filter((f) => !rec.files[f]);
    const result = got.length === 0 ? 'not run' : sum('failed') > 0 ? 'failed' : missing.length ? 'partial' : 'passed';
    const releases = [...new Set(got.map((r) => r.release ?? '?'))];
    const loads = got.map((r) => r.load).filter((x): x is string => !!x);
    const loadRange = loads.length ? rangeOf(loads.flatMap((l) => l.split('-').map(Number))) : '-';
    rows.push([
      rec.kernel,
      rec.tier,
      result,
      `${have.length}/${files.length}`,
      String(sum('passed')),
      String(sum('failed')),
      String(sum('skipped')),
      got.length ? `${Math.round(sum('seconds'))} s` : '-',
      releases.join(',') || '-',
      loadRange,
      [...new Set(got.map((r) => r.commit))].join(',') || '-',
    ]);
    if (got.length && missing.length) notes.push(`${rec.kernel} ${rec.tier}: not run yet: ${missing.join(', ')}`);
    for (const r of got) for (const f of r.failures) notes.push(`${rec.kernel} ${rec.tier}: FAILED ${r.file} > ${f} (${r.commit}, ${r.at})`);
    for (const r of got) if (r.cut) notes.push(`${rec.kernel} ${rec.tier}: CUT ${r.file}: ${r.cut} (${r.commit}, ${r.at})`);
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((c) => (c[i] as string).length)));
  const line = (c: string[]): string =>
    c
      .map((x, i) => pad(x, widths[i] as number))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line), ...notes].join('\n');
}

function rangeOf(xs: number[]): string {
  const v = xs.filter((x) => Number.isFinite(x));
  if (!v.length) return '-';
  const lo = Math.min(...v);
  const hi = Math.max(...v);
  return lo === hi ? lo.toFixed(1) : `${lo.toFixed(1)}-${hi.toFixed(1)}`;
}
