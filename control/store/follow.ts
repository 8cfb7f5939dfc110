// What every publisher of a translation of the store does: translate now, then again after the
// store changes — at most once per event-loop turn however many writes came in — and log each
// translation warning once, when it first appears.
import type { Logger } from '../../common/log';
import type { ConfigStore, Watch } from './store';

export class StoreFollower {
  private watch: Watch | undefined;
  private scheduled = false;

  /**
   * `publish` translates the store's current snapshot and returns its revision; `failed` hears
   * of a publish that threw after a change (the previous output stays in place).
   */
  constructor(
    private readonly publish: () => number,
    private readonly failed: (err: unknown) => void,
  ) {}

  get following(): boolean {
    return this.watch !== undefined;
  }

  /** Publish the current state and follow the store from its revision on. */
  start(store: Pick<ConfigStore, 'watch'>): void {
    if (this.watch) return;
    const revision = this.publish();
    this.watch = store.watch(revision, () => this.schedule());
  }

  stop(): void {
    this.watch?.close();
    this.watch = undefined;
  }

  private schedule(): void {
    if (this.scheduled || !this.watch) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (!this.watch) return;
      try {
        this.publish();
      } catch (err) {
        this.failed(err);
      }
    });
  }
}

/** Logs a translation's warnings once each: those not in the previous translation's. */
export class NewWarnings {
  private last = new Set<string>();

  constructor(private readonly logger: Logger) {}

  log(warnings: readonly string[], revision: number): void {
    const fresh = warnings.filter((w) => !this.last.has(w));
    this.last = new Set(warnings);
    for (const w of fresh) this.logger.warn({ revision }, w);
  }
}
