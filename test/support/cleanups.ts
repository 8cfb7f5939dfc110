// Undo what a test made, also when it fails: register a cleanup as soon as the thing exists;
// after each test they run newest first.
import { afterEach } from 'vitest';

export type Cleanup = () => Promise<void> | void;

/** A list of cleanups run (newest first) after each test of the calling file. */
export function cleanupAfterEach(): (cleanup: Cleanup) => void {
  const cleanups: Cleanup[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return (cleanup) => {
    cleanups.push(cleanup);
  };
}
