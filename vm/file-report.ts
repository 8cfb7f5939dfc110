// Each test file's result written as that file ends. A VM's tier is one vitest run for all the
// files of a part (vitest's start-up and the TypeScript transforms over 9p are paid once), and
// FileReporter writes every finished file to <dir>/files/NNN.json at once, in the entry shape of
// vitest's JSON reporter (what vm/record.ts reads), so a run cut at its time limit or dying in the
// guest keeps every file that finished. `<dir>/files/running` names the file in progress. The
// guest's vitest config (vm/guest/vitest.config.mjs) adds the reporter and runs the files in the
// order given (inGivenOrder). The shapes below are the few members of vitest's reporter API this
// uses (vitest/node is ESM-only; this module is built as CommonJS).
import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A test file's entry, as in vitest's `--reporter=json` testResults (what fileResults reads). */
export interface FileEntry {
  name: string;
  status: 'passed' | 'failed';
  message: string;
  startTime: number;
  endTime: number;
  assertionResults: Array<{ fullName: string; title: string; status: string; failureMessages: string[] }>;
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

// The members of vitest's reporter API used here (vitest 4: TestModule, TestCase).
interface VitestError {
  message?: string;
}
interface VitestTestCase {
  fullName: string;
  name: string;
  result(): { state: string; errors?: ReadonlyArray<VitestError> };
}
interface VitestTestModule {
  moduleId: string;
  state(): string;
  errors(): ReadonlyArray<VitestError>;
  children: { allTests(): Iterable<VitestTestCase> };
}

function messages(errors: ReadonlyArray<VitestError> | undefined): string[] {
  return (errors ?? []).map((e) => e.message ?? String(e));
}

/** A vitest reporter writing each test file's entry to <dir>/files/NNN.json as the file ends. */
export class FileReporter {
  private readonly files: string;
  private readonly started = new Map<string, number>();
  private n = 0;

  constructor(dir: string) {
    this.files = join(dir, 'files');
    mkdirSync(this.files, { recursive: true });
  }

  onTestModuleStart(m: VitestTestModule): void {
    this.started.set(m.moduleId, Date.now());
    this.write('running', `${m.moduleId}\n`);
  }

  onTestModuleEnd(m: VitestTestModule): void {
    const end = Date.now();
    const entry = moduleEntry({
      moduleId: m.moduleId,
      state: m.state(),
      errors: messages(m.errors()),
      tests: [...m.children.allTests()].map((t) => {
        const r = t.result();
        return { fullName: t.fullName, name: t.name, state: r.state, errors: messages(r.errors) };
      }),
      startTime: this.started.get(m.moduleId) ?? end,
      endTime: end,
    });
    this.n++;
    this.write(`${String(this.n).padStart(3, '0')}.json`, JSON.stringify(entry));
    this.write('running', '');
  }

  /** Written whole or not at all (a temp name, then rename), and synced by the guest before power-off. */
  private write(name: string, text: string): void {
    const tmp = join(this.files, `.${name}.tmp`);
    writeFileSync(tmp, text);
    renameSync(tmp, join(this.files, name));
  }
}
