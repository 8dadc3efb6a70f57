import { abortedBy } from './signals.js';

/**
 * Runs tasks one at a time, in the order they were queued, so a session's operations on its
 * copy never interleave. A task whose signal fires while it waits for its turn rejects at once
 * and is skipped when its turn comes; once running, it sees its signal itself.
 */
export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();

  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const turn = this.tail;
    let finished!: () => void;
    this.tail = new Promise<void>((resolve) => (finished = resolve));
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(abortedBy(signal!));
      signal?.addEventListener('abort', onAbort, { once: true });
      void turn.then(async () => {
        signal?.removeEventListener('abort', onAbort);
        try {
          if (signal?.aborted) return reject(abortedBy(signal));
          resolve(await task());
        } catch (error) {
          reject(error);
        } finally {
          finished();
        }
      });
    });
  }
}
