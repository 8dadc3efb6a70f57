import { setTimeout as delay } from 'node:timers/promises';

/** How a promise stood when a test stopped waiting for it. */
export type Settlement<T> =
  | { readonly state: 'resolved'; readonly value: T; readonly elapsedMs: number }
  | { readonly state: 'rejected'; readonly error: unknown; readonly elapsedMs: number }
  | { readonly state: 'pending'; readonly elapsedMs: number };

/**
 * Waits for `promise` to settle, but at most `timeoutMs`, and says how it settled and when:
 * a test of something that must end by itself reports a hang as `pending` instead of hanging.
 */
export async function settleWithin<T>(promise: Promise<T>, timeoutMs: number): Promise<Settlement<T>> {
  const start = Date.now();
  const giveUp = new AbortController();
  const outcome = await Promise.race([
    promise.then(
      (value) => ({ state: 'resolved' as const, value }),
      (error: unknown) => ({ state: 'rejected' as const, error }),
    ),
    delay(timeoutMs, { state: 'pending' as const }, { signal: giveUp.signal }).catch(() => ({ state: 'pending' as const })),
  ]);
  giveUp.abort(); // no timer left behind once the promise has settled
  return { ...outcome, elapsedMs: Date.now() - start };
}

/** A settlement in words, for assertion messages. */
export function describeSettlement(settlement: Settlement<unknown>): string {
  if (settlement.state === 'pending') return `still pending after ${settlement.elapsedMs} ms`;
  if (settlement.state === 'resolved') return `resolved after ${settlement.elapsedMs} ms`;
  const error = settlement.error as Partial<Error & { kind: string }>;
  return `rejected after ${settlement.elapsedMs} ms with ${error.name}${error.kind ? ` (${error.kind})` : ''}: ${error.message}`;
}
