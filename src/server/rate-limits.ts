import { ChatError } from '../domain/errors.js';
import type { Config } from './config.js';

/** One subject's bucket: the tokens it had at `atMs`. */
interface Bucket {
  tokens: number;
  atMs: number;
}

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
    const retryMs = Math.ceil(((1 - bucket.tokens) / this.perSecond) * 1000);
    throw new ChatError(
      'resource-exhausted',
      `"${subject}" reached the ${this.what} rate limit (${this.perSecond} per second, bursts of ${this.burst}); retry in ${retryMs} ms`,
    );
  }

  /** The subject's bucket as of `now`, moved to the most recently used end. */
  private refilled(subject: string, now: number): Bucket {
    const found = this.buckets.get(subject);
    if (found) {
      this.buckets.delete(subject);
      found.tokens = Math.min(this.burst, found.tokens + ((now - found.atMs) / 1000) * this.perSecond);
      found.atMs = now;
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
      const full = bucket.tokens + ((now - bucket.atMs) / 1000) * this.perSecond >= this.burst;
      if (!full) break;
      this.buckets.delete(subject);
    }
    if (this.buckets.size >= this.maxSubjects) this.buckets.delete(this.buckets.keys().next().value!);
  }
}

/** The per-subject limits of a server: sends (both Add methods) and rebuilds. */
export interface CallerLimits {
  readonly sends: RateLimiter;
  readonly rebuilds: RateLimiter;
}

export function callerLimits(
  config: Pick<Config, 'rateSendsPerSecond' | 'rateSendsBurst' | 'rateRebuildsPerSecond' | 'rateRebuildsBurst' | 'rateMaxSubjects'>,
  nowMs?: () => number,
): CallerLimits {
  return {
    sends: new RateLimiter('send', config.rateSendsPerSecond, config.rateSendsBurst, config.rateMaxSubjects, nowMs),
    rebuilds: new RateLimiter('rebuild', config.rateRebuildsPerSecond, config.rateRebuildsBurst, config.rateMaxSubjects, nowMs),
  };
}
