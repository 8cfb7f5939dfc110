// Each test file's result written as that file ends. A VM's tier is one vitest run for all the
// files of a part (vitest's start-up and the TypeScript transforms over 9p are paid once), and
// FileReporter writes every finished file to <dir>/files/NNN.json at once, in the entry shape of
// vitest's JSON reporter (what vm/record.ts reads), so a run cut at its time limit or dying in the
// guest keeps every file that finished. `<dir>/files/running` names the file in progress and
// `running.json` holds how far it got (each test as it ends: a run cut in a file's afterAll keeps
// that file's tests, cutFile). The guest's vitest config (vm/guest/vitest.config.mjs) adds the
// reporter and runs the files in the order given (inGivenOrder). The shapes below are the few members of vitest's reporter API this
// uses (vitest/node is ESM-only; this module is built as CommonJS).
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A test file's entry, as in vitest's `--reporter=json` testResults (what fileResults reads). */
export interface FileEntry {
  name: string;
  status: 'passed' | 'failed';
  message: string;
  startTime: number;
  endTime: number;
  assertionResults: Array<{ fullName: string; title: string; status: string; failureMessages: string[] }>;
  /** the run stopped in this file: what had ended (cutFile) */
  cut?: string;
}

/** What a finished test file came to, in plain values (from vitest's TestModule). */
export interface ModuleSummary {
  moduleId: string;
  /** vitest's module state: passed, failed, skipped, pending, queued */
  state: string;
  /** errors outside the tests: the file failed to load, or a beforeAll/afterAll hook threw */
  errors: string[];
  tests: Array<{ fullName: string; name: string; state: string; errors: string[] }>;
  startTime: number;
  endTime: number;
}

/** The JSON entry of a finished file. A file fails when a test or a hook failed or it could not load. Pure. */
export function moduleEntry(m: ModuleSummary): FileEntry {
  const failed = m.state === 'failed' || m.errors.length > 0 || m.tests.some((t) => t.state === 'failed');
  return {
    name: m.moduleId,
    status: failed ? 'failed' : 'passed',
    message: m.errors.join('\n'),
    startTime: m.startTime,
    endTime: Math.max(m.startTime, m.endTime),
    assertionResults: m.tests.map((t) => ({
      fullName: t.fullName,
      title: t.name,
      // pending: never reached (its file stopped in a hook): recorded as skipped
      status: t.state === 'passed' || t.state === 'failed' ? t.state : 'skipped',
      failureMessages: t.errors,
    })),
  };
}

/**
 * A run's report from the file entries it left (files/NNN.json, in order) and, when the run
 * finished with one, a whole-run report (vitest's JSON reporter, older guests): one vitest JSON
 * report, each file once (a later entry for a file replaces an earlier one, in its place). An
 * entry that does not parse (the VM stopped while it was written) is left out and counted.
 * Returns undefined when nothing was readable. Pure.
 */
export function mergeFileEntries(texts: string[]): { report: string; unreadable: number } | undefined {
  const byName = new Map<string, unknown>();
  let unreadable = 0;
  for (const text of texts) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      unreadable++;
      continue;
    }
    const entries = isRecord(parsed) && Array.isArray(parsed.testResults) ? (parsed.testResults as unknown[]) : [parsed];
    for (const e of entries) {
      if (!isRecord(e) || typeof e.name !== 'string') {
        unreadable++;
        continue;
      }
      byName.set(e.name, e);
    }
  }
  if (byName.size === 0) return undefined;
  return { report: JSON.stringify({ testResults: [...byName.values()] }), unreadable };
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * Test files in the order of the filters that picked them (the first filter a path contains;
 * unmatched files last), stable otherwise: a part cut at its time limit keeps the files its caller
 * put first. Pure.
 */
export function inGivenOrder<T>(items: T[], path: (t: T) => string, filters: string[]): T[] {
  const rank = (t: T): number => {
    const p = path(t);
    const i = filters.findIndex((f) => p.includes(f));
    return i < 0 ? filters.length : i;
  };
  return items
    .map((t, i) => ({ t, i, r: rank(t) }))
    .sort((a, b) => a.r - b.r || a.i - b.i)
    .map((x) => x.t);
}

/** The entries a run left in `dir` (files/NNN.json in order, then a whole-run report.json or report-N.json), as texts. */
export function readFileEntries(dir: string): string[] {
  const texts: string[] = [];
  const byNumber = (a: string, b: string): number => Number(/\d+/.exec(a)?.[0] ?? 0) - Number(/\d+/.exec(b)?.[0] ?? 0);
  const files = join(dir, 'files');
  let names: string[] = [];
  try {
    names = readdirSync(files).filter((f) => /^\d+\.json$/.test(f));
  } catch {
    /* no per-file entries */
  }
  for (const f of names.sort(byNumber)) texts.push(readFileSync(join(files, f), 'utf8'));
  for (const f of readdirSync(dir)
    .filter((x) => /^report(-\d+)?\.json$/.test(x))
    .sort(byNumber))
    texts.push(readFileSync(join(dir, f), 'utf8'));
  return texts;
}

/** The file a run was in when it stopped (files/running, written as each file starts), if any. */
export function runningFile(dir: string): string | undefined {
  try {
    return readFileSync(join(dir, 'files', 'running'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The file in progress, as far as it got: its entry with the tests that have ended (the others
 * `skipped` in it), how many of its tests have ended, and whether it was in a closing `afterAll`
 * (its tests done, its clean-up running). FileReporter rewrites it (files/running.json) as the
 * file starts, as each test ends and as an `afterAll` starts: vitest writes a file's result only
 * after its `afterAll` hooks, so a run cut while a lab file tears its lab down (30 s and more
 * under TCG) would otherwise lose a file whose every test had ended.
 */
export interface RunningEntry {
  entry: FileEntry;
  ended: number;
  total: number;
  /** in an afterAll hook (of the file or of a suite) */
  closing: boolean;
}

/** What a cut run's file in progress came to, for the record: recorded or not, and the words for the row. Pure. */
export interface CutFile {
  /** the file's entry when it is recorded: every test had ended, or one had failed */
  entry?: FileEntry;
  /** "3 of 5 tests ended", "all 5 tests ended, cut in its clean-up (afterAll); recorded" */
  state: string;
}

/**
 * A cut run's file in progress (files/running.json): recorded when every one of its tests had
 * ended (cut in its clean-up: the tests' results stand, the entry says the clean-up was cut) or
 * when one of the tests that ended failed (a failure is a result); else not recorded (the tests
 * never reached would read as skipped, and a file's older complete result must not be replaced by
 * part of one). Pure.
 */
export function cutFile(r: RunningEntry): CutFile {
  const failed = r.entry.status === 'failed';
  if (r.total > 0 && r.ended >= r.total) {
    const where = r.closing ? 'cut in its clean-up (afterAll)' : 'cut before its clean-up';
    const note = `all ${r.total} tests ended; the VM stopped before the file did (${where})`;
    return { entry: { ...r.entry, cut: note }, state: `all ${r.total} tests ended, ${where}; recorded` };
  }
  const state = `${r.ended} of ${r.total} tests ended`;
  if (failed) return { entry: { ...r.entry, status: 'failed', cut: `${state} when the VM stopped` }, state: `${state}, with a failure; recorded` };
  return { state: `${state}; not recorded` };
}

/** The file in progress when a run stopped (files/running.json), if the reporter wrote one and it reads. */
export function readRunningEntry(dir: string): RunningEntry | undefined {
  try {
    const r = JSON.parse(readFileSync(join(dir, 'files', 'running.json'), 'utf8')) as RunningEntry;
    return isRecord(r) && isRecord(r.entry) && typeof r.entry.name === 'string' && Array.isArray(r.entry.assertionResults) ? r : undefined;
  } catch {
    return undefined;
  }
}

// The members of vitest's reporter API used here (vitest 4: TestModule, TestCase).
interface VitestError {
  message?: string;
}
interface VitestTestCase {
  fullName: string;
  name: string;
  result(): { state: string; errors?: ReadonlyArray<VitestError> };
}
interface VitestTestSuite {
  fullName: string;
  errors(): ReadonlyArray<VitestError>;
}
interface VitestTestModule {
  moduleId: string;
  state(): string;
  errors(): ReadonlyArray<VitestError>;
  /** allSuites: the describe blocks, where a beforeAll/afterAll hook's error is kept (not on the module) */
  children: { allTests(): Iterable<VitestTestCase>; allSuites?(): Iterable<VitestTestSuite> };
}
interface VitestHook {
  name: string;
}

function messages(errors: ReadonlyArray<VitestError> | undefined): string[] {
  return (errors ?? []).map((e) => e.message ?? String(e));
}

/** The errors of a file outside its tests: the module's (it did not load) and each describe block's (a hook threw), named by the block. */
function outsideTests(m: VitestTestModule): string[] {
  const out = messages(m.errors());
  for (const s of m.children.allSuites?.() ?? []) for (const e of messages(s.errors())) out.push(`${s.fullName}: ${e}`);
  return out;
}

/** A vitest reporter writing each test file's entry to <dir>/files/NNN.json as the file ends. */
export class FileReporter {
  private readonly files: string;
  private readonly started = new Map<string, number>();
  private n = 0;
  /** the file in progress (vitest runs a tier's files one at a time here), and whether it is in an afterAll */
  private current: VitestTestModule | undefined;
  private closing = false;

  constructor(dir: string) {
    this.files = join(dir, 'files');
    mkdirSync(this.files, { recursive: true });
  }

  onTestModuleStart(m: VitestTestModule): void {
    this.started.set(m.moduleId, Date.now());
    this.current = m;
    this.closing = false;
    this.write('running', `${m.moduleId}\n`);
    this.writeRunning();
  }

  /** A test ended: the file in progress so far (files/running.json), for a run cut before the file ends. */
  onTestCaseResult(): void {
    this.closing = false;
    this.writeRunning();
  }

  onHookStart(hook: VitestHook): void {
    if (hook.name !== 'afterAll' || !this.current) return;
    this.closing = true;
    this.writeRunning();
  }

  onTestModuleEnd(m: VitestTestModule): void {
    const entry = this.entryOf(m, Date.now());
    this.n++;
    this.write(`${String(this.n).padStart(3, '0')}.json`, JSON.stringify(entry.entry));
    this.write('running', '');
    if (this.current?.moduleId === m.moduleId) this.current = undefined;
    rmSync(join(this.files, 'running.json'), { force: true });
  }

  private entryOf(m: VitestTestModule, end: number): { entry: FileEntry; ended: number; total: number } {
    const tests = [...m.children.allTests()].map((t) => {
      const r = t.result();
      return { fullName: t.fullName, name: t.name, state: r.state, errors: messages(r.errors) };
    });
    const entry = moduleEntry({
      moduleId: m.moduleId,
      state: m.state(),
      errors: outsideTests(m),
      tests,
      startTime: this.started.get(m.moduleId) ?? end,
      endTime: end,
    });
    return { entry, ended: tests.filter((t) => t.state !== 'pending' && t.state !== 'queued').length, total: tests.length };
  }

  private writeRunning(): void {
    if (!this.current) return;
    const running: RunningEntry = { ...this.entryOf(this.current, Date.now()), closing: this.closing };
    this.write('running.json', JSON.stringify(running));
  }

  /** Written whole or not at all (a temp name, then rename), and synced by the guest before power-off. */
  private write(name: string, text: string): void {
    const tmp = join(this.files, `.${name}.tmp`);
    writeFileSync(tmp, text);
    renameSync(tmp, join(this.files, name));
  }
}
