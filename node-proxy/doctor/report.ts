// Turns probe results into the doctor's report: one line per requirement, present or missing, and
// for what is missing the first Linux release that has it. The same text is the node proxy's
// refusal to start when something is missing.
import { compareKernel, KERNEL_FLOOR, type Requirement } from './requirements';

export interface ProbeOutcome {
  readonly present: boolean;
  /** Extra facts ("mounted at /sys/fs/cgroup/unified", the errno of a failed probe). */
  readonly detail?: string;
}

export interface CheckedRequirement extends Requirement, ProbeOutcome {}

export interface DoctorReport {
  /** uname -r */
  readonly kernel: string;
  readonly checks: readonly CheckedRequirement[];
  readonly missing: readonly CheckedRequirement[];
  /** Optional features that are absent: the node proxy runs, without what they give. */
  readonly absentOptional: readonly CheckedRequirement[];
  readonly ok: boolean;
  /** The release that would provide everything missing (at least the floor), when something is. */
  readonly needKernel?: string;
}

export function buildReport(kernel: string, requirements: readonly Requirement[], outcomes: ReadonlyMap<string, ProbeOutcome>): DoctorReport {
  const checks = requirements.map((r): CheckedRequirement => {
    const o = outcomes.get(r.id) ?? { present: false, detail: 'not probed' };
    return { ...r, ...o };
  });
  const missing = checks.filter((c) => !c.present && !c.optional);
  const absentOptional = checks.filter((c) => !c.present && c.optional);
  let needKernel: string | undefined;
  if (missing.length > 0) {
    needKernel = missing.reduce((max, c) => (compareKernel(c.minKernel, max) > 0 ? c.minKernel : max), KERNEL_FLOOR);
  }
  return { kernel, checks, missing, absentOptional, ok: missing.length === 0, ...(needKernel ? { needKernel } : {}) };
}

export function formatReport(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((c) => c.what.length));
  const lines = [`kernel ${report.kernel} (nodemesh needs Linux >= ${KERNEL_FLOOR})`];
  if (compareKernel(report.kernel, KERNEL_FLOOR) < 0) {
    lines.push(`warning: this kernel is older than ${KERNEL_FLOOR}; only the probes below decide, but it is not a tested release`);
  }
  for (const c of report.checks) {
    const state = c.present ? 'present' : c.optional ? 'absent ' : 'MISSING';
    const since = c.present ? '' : `  (since Linux ${c.minKernel}${c.optional ? `; optional: without it ${c.optional.without}` : ''})`;
    const detail = c.detail ? `  [${c.detail}]` : '';
    lines.push(`  ${state}  ${c.what.padEnd(width)}  ${c.usedFor}${since}${detail}`);
  }
  lines.push(report.ok ? 'all capture requirements are present' : missingMessage(report));
  return lines.join('\n');
}

/** One sentence naming every missing piece, what to do, and the release that has them all. */
export function missingMessage(report: DoctorReport): string {
  if (report.ok) return '';
  const names = report.missing.map((c) => `${c.what} (since Linux ${c.minKernel}${c.detail ? `; ${c.detail}` : ''})`);
  return (
    `this kernel (${report.kernel}) lacks ${report.missing.length === 1 ? 'a feature' : `${report.missing.length} features`} that capture needs: ` +
    `${names.join(', ')}. Run on Linux >= ${report.needKernel} with cgroup v2 and bpffs mounted and kernel BTF enabled ` +
    `(CONFIG_DEBUG_INFO_BTF=y); 'nodemesh doctor' lists every check.`
  );
}
