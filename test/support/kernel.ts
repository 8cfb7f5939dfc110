// What the running kernel is, for tests whose expectations depend on it (the matrix runs them on
// Linux 5.10, 6.1, 6.12 and the host's kernel: see docs/kernels.md).
import { release } from 'node:os';

/** [major, minor] of the running kernel (os.release(), e.g. "5.10.0-46-amd64" -> [5, 10]). */
export function kernelVersion(rel = release()): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  if (!m) throw new Error(`cannot read a kernel version from "${rel}"`);
  return [Number(m[1]), Number(m[2])];
}

/** Whether the running kernel is at least major.minor. */
export function kernelAtLeast(major: number, minor: number, rel = release()): boolean {
  const [a, b] = kernelVersion(rel);
  return a > major || (a === major && b >= minor);
}
