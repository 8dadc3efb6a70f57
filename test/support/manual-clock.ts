import type { Clock } from '../../src/domain/limits.js';
import { abortedBy } from '../../src/client/signals.js';

/**
 * A server clock that moves only when a test moves it, or when an SDK session's sleeps do
 * ({@link ManualClock.sleep}): rate limits and the upload budget then refill by the clock, not by
 * wall time, so a test of them neither waits nor depends on how fast the machine is.
 */
export class ManualClock implements Clock {
  private ms: number;

  /** Starts at the wall clock's now, so send times stamped by other servers are not in its future. */
  constructor(start = Date.now()) {
    this.ms = start;
  }

  now(): Date {
    return new Date(this.ms);
  }

  advance(ms: number): void {
    this.ms += ms;
  }

  /**
   * A session's `sleep` that takes no wall time: the clock moves on to when the sleep would end,
   * unless another sleep already took it further, and the sleep ends at the next turn of the
   * event loop. Sleeps of several sessions overlap, as they would in time.
   */
  readonly sleep = (ms: number, signal: AbortSignal): Promise<void> => {
    const until = this.ms + ms;
    return new Promise((resolve, reject) =>
      setImmediate(() => {
        if (signal.aborted) return reject(abortedBy(signal));
        this.ms = Math.max(this.ms, until);
        resolve();
      }),
    );
  };
}
