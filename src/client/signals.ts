import { ChatSdkError } from './errors.js';

/** A signal that fires when any of its sources does, and the function that detaches it from them. */
export interface LinkedSignal {
  readonly signal: AbortSignal;
  /** Stops listening to the sources; call it once the operation is over. */
  dispose(): void;
}

/**
 * Links `sources` into one signal. Unlike `AbortSignal.any`, it listens to each source with an
 * ordinary listener, so a source nobody else references (a caller's `AbortSignal.timeout(...)`
 * passed inline) stays alive, and fires, until the operation disposes of the link: Node keeps a
 * timeout signal from garbage collection only while it has such a listener.
 */
export function linkSignals(...sources: readonly (AbortSignal | undefined)[]): LinkedSignal {
  const controller = new AbortController();
  const present = sources.filter((s): s is AbortSignal => s !== undefined);
  const already = present.find((s) => s.aborted);
  if (already) {
    controller.abort(already.reason);
    return { signal: controller.signal, dispose: () => {} };
  }
  const onAbort = (event: Event) => {
    dispose();
    controller.abort((event.target as AbortSignal).reason);
  };
  const dispose = () => {
    for (const source of present) source.removeEventListener('abort', onAbort);
  };
  for (const source of present) source.addEventListener('abort', onAbort);
  return { signal: controller.signal, dispose };
}

/** The error an operation rejects with when its signal fired. */
export function abortedBy(signal: AbortSignal, what = 'the operation was aborted'): ChatSdkError {
  const reason: unknown = signal.reason;
  if (reason instanceof ChatSdkError) return reason;
  return new ChatSdkError('aborted', what, undefined, { cause: reason });
}

/** Resolves or rejects as `promise` does, or rejects with {@link abortedBy} as soon as `signal` fires. */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal, what?: string): Promise<T> {
  if (signal.aborted) return Promise.reject(abortedBy(signal, what));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortedBy(signal, what));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
