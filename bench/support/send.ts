// Bulk sending for the benchmarks: `bytes` bytes of one repeated block, written as fast as the
// stream takes them (waiting for 'drain'), then the end.
import type { Writable } from 'node:stream';

/** Writes `bytes` bytes (block after block, the last one cut) to `out` and ends it; `done` once all is handed over. */
export function sendBlocks(out: Writable, block: Buffer, bytes: number, done?: () => void): void {
  let left = bytes;
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, block.length);
      left -= n;
      if (!out.write(n === block.length ? block : block.subarray(0, n))) {
        out.once('drain', pump);
        return;
      }
    }
    out.end();
    done?.();
  };
  pump();
}
