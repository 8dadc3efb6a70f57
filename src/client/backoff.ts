/** Capped exponential backoff with full jitter. */
export interface BackoffOptions {
  /** Delay ceiling before the first retry. */
  readonly initialMs: number;
  /** Largest delay ceiling. */
  readonly maxMs: number;
  /** Growth of the ceiling per attempt. */
  readonly multiplier: number;
}

/**
 * The delay before retry number `attempt` (0-based): uniform in [0, ceiling), where the
 * ceiling grows from `initialMs` by `multiplier` up to `maxMs`. Full jitter spreads the
 * clients of a dead server over time instead of having them stampede the next one together.
 */
export function backoffDelayMs(attempt: number, options: BackoffOptions, random: () => number): number {
  const ceiling = Math.min(options.maxMs, options.initialMs * options.multiplier ** attempt);
  return Math.floor(random() * ceiling);
}
