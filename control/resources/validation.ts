// Validation errors that a user can act on: every issue names the resource (kind ns/name), the
// field path (`spec.ports[1].targetPort`) and the reason. Schema issues from zod are converted here.
import type { z } from 'zod';

export interface ValidationIssue {
  /** Field path in the resource, e.g. `spec.ports[1].targetPort`; '' for the whole resource. */
  readonly path: string;
  readonly message: string;
}

/** Refusal of a whole resource (or a whole batch): nothing was written. */
export class ValidationError extends Error {
  constructor(
    /** `Kind namespace/name` (or `Kind name` for cluster-scoped kinds, `document N` when unknown). */
    readonly resource: string,
    readonly issues: readonly ValidationIssue[],
  ) {
    super(`${resource} is invalid: ${issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}`);
    this.name = 'ValidationError';
  }
}

const IDENT_RE = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** `['spec','ports',1,'targetPort']` → `spec.ports[1].targetPort`; odd keys are quoted. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const s = String(seg);
      if (IDENT_RE.test(s)) out += out ? `.${s}` : s;
      else out += `[${JSON.stringify(s)}]`;
    }
  }
  return out;
}

/** Flattens zod issues into field-path/reason pairs (unknown keys get their own path). */
export function issuesFromZod(error: z.ZodError, prefix: readonly PropertyKey[] = []): ValidationIssue[] {
  const out: ValidationIssue[] = [];
  for (const issue of error.issues) {
    const base = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: formatPath([...base, key]), message: 'unknown field' });
    } else if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      // Report the branch that got furthest (most specific path) rather than "invalid input".
      const branches = issue.errors.map((errs) => errs.map((e) => ({ ...e, path: [...base, ...e.path] })));
      const best = branches.reduce((a, b) => (deepest(b) > deepest(a) ? b : a));
      if (deepest(best) > base.length) {
        for (const e of best) out.push({ path: formatPath(e.path), message: e.message });
      } else out.push({ path: formatPath(base), message: issue.message });
    } else {
      out.push({ path: formatPath(base), message: issue.message });
    }
  }
  return out;
}

function deepest(issues: readonly { path: readonly PropertyKey[] }[]): number {
  return issues.reduce((m, i) => Math.max(m, i.path.length), 0);
}
