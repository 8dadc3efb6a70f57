import type { Logger } from 'pino';

/** A warning that may come in floods (connections refused, uploads refused) is logged at most this often, with the count since. */
export const WARNING_INTERVAL_MS = 10_000;

/**
 * A warning logged at most every {@link WARNING_INTERVAL_MS}, with `fields` of the latest
 * occurrence and, under `countKey`, how many occurred since it was last logged.
 */
export function rateLimitedWarning(logger: Logger, countKey: string, message: string): (fields: Record<string, unknown>) => void {
  let unlogged = 0;
  let loggedAt = Number.NEGATIVE_INFINITY;
  return (fields) => {
    unlogged += 1;
    const now = performance.now();
    if (now - loggedAt < WARNING_INTERVAL_MS) return;
    logger.warn({ [countKey]: unlogged, ...fields }, message);
    unlogged = 0;
    loggedAt = now;
  };
}
