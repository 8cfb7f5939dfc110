// Which workloads of a lab are captured and with which exclusions: the lab's stand-in for the
// `nodemesh.io/dataplane-mode` label and the per-workload exclusion annotations. A small YAML or
// JSON file, re-read whenever it changes:
//
//   mode: ambient            # default for every pod: ambient (captured) or none
//   workloads:
//     pod1-2: { mode: none }
//     pod1-1: { excludedOutboundPorts: [5432], excludedInboundPorts: [9090], excludedCidrs: [10.1.0.0/16] }
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

const settingsSchema = z
  .object({
    mode: z.enum(['ambient', 'none']).optional(),
    namespace: z.string().min(1).optional(),
    excludedOutboundPorts: z.array(z.number().int().min(1).max(65535)).optional(),
    excludedInboundPorts: z.array(z.number().int().min(1).max(65535)).optional(),
    excludedCidrs: z.array(z.string()).optional(),
  })
  .strict();

const selectionSchema = z
  .object({
    mode: z.enum(['ambient', 'none']).default('ambient'),
    workloads: z.record(z.string(), settingsSchema).default({}),
  })
  .strict();

export type CaptureSelection = z.infer<typeof selectionSchema>;
export type WorkloadSettings = z.infer<typeof settingsSchema>;

export const DEFAULT_SELECTION: CaptureSelection = { mode: 'ambient', workloads: {} };

export function parseSelection(text: string, origin: string): CaptureSelection {
  let raw: unknown;
  try {
    raw = text.trim() === '' ? {} : parseYaml(text);
  } catch (err) {
    throw new Error(`capture selection ${origin} is not YAML/JSON: ${(err as Error).message}`);
  }
  const parsed = selectionSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`capture selection ${origin}: ${issue.path.join('.') || '(top)'}: ${issue.message}`);
  }
  return parsed.data;
}

/** The settings for one workload name, or undefined when it is not captured. */
export function settingsFor(sel: CaptureSelection, name: string): WorkloadSettings | undefined {
  const own = sel.workloads[name];
  const mode = own?.mode ?? sel.mode;
  return mode === 'ambient' ? (own ?? {}) : undefined;
}
