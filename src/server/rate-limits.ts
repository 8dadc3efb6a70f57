import { ChatError } from '../domain/errors.js';
import type { Config } from './config.js';
import { RebuildBudget } from './rebuild-budget.js';
import { type Bucket, levelAt, msUntil, refill } from './token-bucket.js';

/**
 * A token bucket per subject: `perSecond` tokens a second, at most `burst` saved up. It holds
 * at most `maxSubjects` buckets, the least recently used first to go: a bucket that has filled
 * up again is the same as none, and when every one is still draining the oldest is dropped (its
 * subject starts afresh with a full bucket: under a flood of new subjects the limit is looser,
 * never the memory larger).
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  /**
   * @param what the limit's name in refusals ("send", "rebuild")
   * @param perSecond 0: no limit
   * @param burst 0: one second's worth (at least 1)
   */
  constructor(
    private readonly what: string,
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly maxSubjects: number,
    private readonly nowMs: () => number = () => performance.now(),
  ) {
    this.burst = burst > 0 ? burst : Math.max(1, perSecond);
  }

  /** How many subjects have a bucket. */
  get size(): number {
    return this.buckets.size;
  }

  /** Takes one token for `subject`, or refuses (RESOURCE_EXHAUSTED) with when to retry. */
  take(subject: string): void {
    if (this.perSecond <= 0) return;
    const now = this.nowMs();
    const bucket = this.refilled(subject, now);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return;
    }
    const retryAfterMs = msUntil(bucket, 1, this.perSecond);
    throw new ChatError(
      'resource-exhausted',
      `"${subject}" reached the ${this.what} rate limit (${this.perSecond} per second, bursts of ${this.burst}); retry in ${retryAfterMs} ms`,
      { retryAfterMs },
    );
  }

  /** The subject's bucket as of `now`, moved to the most recently used end. */
  private refilled(subject: string, now: number): Bucket {
    const found = this.buckets.get(subject);
    if (found) {
      this.buckets.delete(subject);
      refill(found, now, this.perSecond, this.burst);
      this.buckets.set(subject, found);
      return found;
    }
    this.makeRoom(now);
    const bucket = { tokens: this.burst, atMs: now };
    this.buckets.set(subject, bucket);
    return bucket;
  }

  /** At the cap, drops the full buckets among the least recently used, or else the oldest one. */
  private makeRoom(now: number): void {
    if (this.buckets.size < this.maxSubjects) return;
    for (const [subject, bucket] of this.buckets) {
      if (levelAt(bucket, now, this.perSecond, this.burst) < this.burst) break;
      this.buckets.delete(subject);
    }
    if (this.buckets.size >= this.maxSubjects) this.buckets.delete(this.buckets.keys().next().value!);
  }
}

/**
 * A server's rate limits: per token subject, sends (both Add methods) and rebuilds; over the
 * whole server, the bytes of Rebuild uploads.
 */
export interface RateLimits {
  readonly sends: RateLimiter;
  readonly rebuilds: RateLimiter;
  readonly rebuildBytes: RebuildBudget;
}

/**
 * The limits `config` sets, reading the time (in ms) from `nowMs`; `onRebuildRefusal` is told
 * of each upload the budget refuses.
 */
export function rateLimits(
  config: Pick<
    Config,
    | 'rateSendsPerSecond'
    | 'rateSendsBurst'
    | 'rateRebuildsPerSecond'
    | 'rateRebuildsBurst'
    | 'rateMaxSubjects'
    | 'rebuildBytesPerSecond'
    | 'rebuildBytesBurst'
    | 'maxRequestBytes'
  >,
  nowMs?: () => number,
  onRebuildRefusal?: ConstructorParameters<typeof RebuildBudget>[3],
): RateLimits {
  return {
    sends: new RateLimiter('send', config.rateSendsPerSecond, config.rateSendsBurst, config.rateMaxSubjects, nowMs),
    rebuilds: new RateLimiter('rebuild', config.rateRebuildsPerSecond, config.rateRebuildsBurst, config.rateMaxSubjects, nowMs),
    rebuildBytes: new RebuildBudget(config.rebuildBytesPerSecond, rebuildBurstBytes(config), nowMs, onRebuildRefusal),
  };
}

/**
 * The bytes of uploads the server admits at once after a quiet time: `rebuildBytesBurst`, or
 * when that is 0 one second's worth, but never less than the largest request, which would
 * otherwise never be admitted.
 */
export function rebuildBurstBytes(config: Pick<Config, 'rebuildBytesPerSecond' | 'rebuildBytesBurst' | 'maxRequestBytes'>): number {
  return config.rebuildBytesBurst > 0 ? config.rebuildBytesBurst : Math.max(config.rebuildBytesPerSecond, config.maxRequestBytes);
}
