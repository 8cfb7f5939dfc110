// The CPU slice the addon's data-path threads (the HBONE engine's, the same-node splice thread) ask
// the kernel for (native/src/thread_hint.h; docs/hbone.md, "Latency: the slice the engine asks for").

/**
 * The default: ask for nothing (the kernel's own slice). A short slice (100, the shortest the fair
 * scheduler grants) lets a woken engine thread run before the task it woke beside finishes its
 * slice, but on a busy machine it also cost batching: 1.54 against 1.25 wake-ups per request and
 * ~20 % more CPU per request at load ~13 (docs/hbone.md), and no latency gain could be measured
 * there. Opt-in until a quiet machine shows what it is worth.
 */
export const DEFAULT_SLICE_US = 0;

/**
 * NODEMESH_DATAPATH_SLICE_US: unset or empty is the default (0: the kernel's slice); else a whole
 * number of microseconds 100–100000 (what the kernel accepts). Anything else is refused, naming
 * the variable.
 */
export function datapathSliceUs(value: string | undefined = process.env.NODEMESH_DATAPATH_SLICE_US): number {
  const v = (value ?? '').trim();
  if (v === '') return DEFAULT_SLICE_US;
  const n = Number(v);
  if (!/^\d+$/.test(v) || (n !== 0 && (n < 100 || n > 100_000)))
    throw new Error(`NODEMESH_DATAPATH_SLICE_US=${value} is not a slice: use whole microseconds 100–100000, or 0 (or unset) to leave the kernel's own`);
  return n;
}
