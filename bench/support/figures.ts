// Small helpers for the figures benchmarks print.

/** Milliseconds since a process.hrtime.bigint() reading. */
export function msSince(from: bigint): number {
  return Number(process.hrtime.bigint() - from) / 1e6;
}

export function mib(bytes: number, digits = 1): string {
  return `${(bytes / 1024 / 1024).toFixed(digits)} MiB`;
}

/** The q-quantile of an ascending array (nearest rank, low). */
export function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}
