// Wait until a condition over state that changes on events holds: whoever changes the state
// calls notify(); until() re-checks then, and fails on the first recorded failure or a timeout.

export class Waiter {
  private watchers: Array<() => void> = [];
  failed: Error | undefined;

  /** `who` names the waiting party in the timeout error. */
  constructor(private readonly who: string) {}

  /** Re-check every pending until(). */
  notify(): void {
    const w = this.watchers;
    this.watchers = [];
    for (const f of w) f();
  }

  /** Record a failure (rejects every pending and later until()). */
  fail(err: Error): void {
    this.failed = err;
    this.notify();
  }

  /** Resolves when `done()` holds (checked now and on every notify()). */
  until(done: () => boolean, timeoutMs: number, what: () => string = () => ''): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.who} timed out after ${timeoutMs} ms${what()}`)), timeoutMs);
      const check = (): void => {
        if (this.failed) {
          clearTimeout(timer);
          reject(this.failed);
        } else if (done()) {
          clearTimeout(timer);
          resolve();
        } else this.watchers.push(check);
      };
      check();
    });
  }
}
