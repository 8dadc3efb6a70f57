import type { Clock } from '../../src/domain/limits.js';

/** A clock the network moves one second per delivery, so a run never reads wall time. */
export class SimClock implements Clock {
  private ms = Date.UTC(2026, 0, 1);

  now(): Date {
    return new Date(this.ms);
  }

  tick(): void {
    this.ms += 1000;
  }
}

/** Resolves once every microtask queued so far, and every one those queue, has run. */
export function quiescence(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
