// What a tier run on one kernel came to: read from vitest's JSON report, and the kernel x tier
// table `nodemesh vm test` prints. Pure.

import type { FileResult } from './record';

/** doctor: only `nodemesh doctor`, no tests */
export type VmTier = 'kernel' | 'lab' | 'doctor';

export interface TierCounts {
  passed: number;
  failed: number;
  skipped: number;
  /** "file > suite > test" of every failed test (and of every file that failed to load) */
  failures: string[];
}

export interface KernelOutcome {
  kernel: string;
  /** the kernel release that ran (uname -r), when known */
  release?: string;
  /** tcg, kvm or host (run directly) */
  accel?: string;
  tier: VmTier;
  /** passed: every test passed or skipped; failed: a test failed; error: no report (boot, timeout…) */
  result: 'passed' | 'failed' | 'error';
  counts?: TierCounts;
  /** doctor's verdict inside: ok, or what it says is missing */
  doctor?: string;
  /** why there is no report (error), in a line */
  error?: string;
  seconds: number;
  /** the host's 1-minute load average at the start and end of the run ("1.2-14.0") */
  load?: string;
  /** a run that did not finish: the file it stopped in, and how far that file got ("in test/x (3 of 5 tests ended; not recorded)") */
  cutIn?: string;
  /** a run that did not finish: how many files ended before it stopped */
  finishedFiles?: number;
  /** each test file's result (from the report), for the recorded matrix (vm/record.ts) */
  files?: FileResult[];
}

interface JsonAssertion {
  fullName?: string;
  title?: string;
  status?: string;
}
interface JsonFile {
  name?: string;
  status?: string;
  message?: string;
  assertionResults?: JsonAssertion[];
}

/** Counts of vitest's `--reporter=json` output; file paths are shown relative to root. */
export function countReport(json: string, root: string): TierCounts {
  const report = JSON.parse(json) as { testResults?: JsonFile[] };
  const counts: TierCounts = { passed: 0, failed: 0, skipped: 0, failures: [] };
  for (const file of report.testResults ?? []) {
    const path = (file.name ?? '?').startsWith(root + '/') ? (file.name as string).slice(root.length + 1) : (file.name ?? '?');
    const tests = file.assertionResults ?? [];
    if (file.status === 'failed' && !tests.some((t) => t.status === 'failed')) {
      counts.failed++;
      counts.failures.push(`${path}: ${(file.message ?? 'failed').split('\n')[0]}`);
    }
    for (const t of tests) {
      if (t.status === 'passed') counts.passed++;
      else if (t.status === 'failed') {
        counts.failed++;
        counts.failures.push(`${path} > ${t.fullName ?? t.title ?? '?'}`);
      } else counts.skipped++;
    }
  }
  return counts;
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

/** The table: one row per kernel and tier, then the failing tests and errors under it. */
export function formatTable(rows: KernelOutcome[]): string {
  const head = ['KERNEL', 'RELEASE', 'ACCEL', 'TIER', 'RESULT', 'PASSED', 'FAILED', 'SKIPPED', 'DOCTOR', 'TIME', 'LOAD'];
  const cells = rows.map((r) => [
    r.kernel,
    r.release ?? '-',
    r.accel ?? '-',
    r.tier,
    r.result,
    r.counts ? String(r.counts.passed) : '-',
    r.counts ? String(r.counts.failed) : '-',
    r.counts ? String(r.counts.skipped) : '-',
    r.doctor ?? '-',
    `${Math.round(r.seconds)} s`,
    r.load ?? '-',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: string[]): string =>
    c
      .map((x, i) => pad(x, widths[i] as number))
      .join('  ')
      .trimEnd();
  const out = [line(head), ...cells.map(line)];
  for (const r of rows) {
    if (r.error) out.push(`${r.kernel} ${r.tier}: ${r.error}`);
    for (const f of r.counts?.failures ?? []) out.push(`${r.kernel} ${r.tier}: FAILED ${f}`);
  }
  return out.join('\n');
}
