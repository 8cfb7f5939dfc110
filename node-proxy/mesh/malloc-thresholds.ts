// The C heap's thresholds, held from start-up (docs/node-proxy.md, "Memory"). glibc raises its mmap
// threshold to the size of the largest mmapped block freed so far, and its trim threshold to twice
// that: once an HBONE connection's 256 KiB receive buffer or 512 KiB ciphertext buffer has been
// freed, later ones come from the engine threads' arenas, and each thread arena keeps up to 1 MiB of
// free memory resident at its top after a burst — malloc_trim (idle-gc.ts) returns only the free
// pages inside a thread arena's bins, never its top. Measured on a 3-pod lab after 5 s of new
// connections: the engine threads' arenas held 1.9-2.2 MiB more than before the burst with the
// dynamic thresholds, 0.75 MiB with them held at 128 KiB.
import type { Logger } from '../../common/log';
import { holdMallocThresholds } from '../../native/netns';

/** glibc's initial mmap and trim threshold, kept for good. */
export const MALLOC_THRESHOLD_BYTES = 128 << 10;
const MIN = 4096;
const MAX = 32 << 20;

/**
 * The threshold from NODEMESH_MALLOC_THRESHOLD (bytes): MALLOC_THRESHOLD_BYTES where unset or
 * empty; 0 leaves glibc's dynamic thresholds (to compare). Anything else than 0 or a whole number
 * of bytes in 4096..33554432 throws, naming the variable. Pure.
 */
export function mallocThresholdFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.NODEMESH_MALLOC_THRESHOLD;
  if (raw === undefined || raw === '') return MALLOC_THRESHOLD_BYTES;
  const v = Number(raw);
  if (Number.isInteger(v) && (v === 0 || (v >= MIN && v <= MAX))) return v;
  throw new Error(`NODEMESH_MALLOC_THRESHOLD=${raw}: expected 0 (glibc's dynamic thresholds) or a whole number of bytes from ${MIN} to ${MAX}`);
}

/** Holds the thresholds at `bytes` (0: does nothing). Never throws: memory is not worth failing a start. */
export function holdMallocThresholdsAt(bytes: number, log: Logger): void {
  if (bytes === 0) return;
  try {
    if (!holdMallocThresholds(bytes))
      log.info({ bytes }, 'the C library did not take fixed malloc thresholds (not glibc?): freed buffers may stay resident after a burst');
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'could not fix the malloc thresholds (native addon)');
  }
}
