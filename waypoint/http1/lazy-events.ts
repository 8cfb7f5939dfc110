// on/once/off/emit for the codec's per-message objects (a downstream response, an upstream call)
// with the EventEmitter made only when a listener is added: most of them get none but the request
// path's own, which they call directly, so a request makes no emitter and no listener table.
import { EventEmitter } from 'node:events';

/** Any listener (its parameters are whatever the event passes). */
type Listener = (...args: never[]) => void;
/** How EventEmitter calls it. */
type Called = (...args: unknown[]) => void;

export class LazyEvents {
  private emitter: EventEmitter | undefined;

  on(event: string, fn: Listener): this {
    (this.emitter ??= new EventEmitter()).on(event, fn as Called);
    return this;
  }

  once(event: string, fn: Listener): this {
    (this.emitter ??= new EventEmitter()).once(event, fn as Called);
    return this;
  }

  off(event: string, fn: Listener): this {
    this.emitter?.off(event, fn as Called);
    return this;
  }

  removeListener(event: string, fn: Listener): this {
    return this.off(event, fn);
  }

  /** Emit to the listeners added (false when there are none; an 'error' without listeners is not thrown). */
  emit(event: string, ...args: unknown[]): boolean {
    return this.emitter !== undefined && this.emitter.emit(event, ...args);
  }

  listenerCount(event: string): number {
    return this.emitter?.listenerCount(event) ?? 0;
  }
}
