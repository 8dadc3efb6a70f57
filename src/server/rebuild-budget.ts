import { ChatError } from '../domain/errors.js';
import { type Bucket, msUntil, refill } from './token-bucket.js';

/** What the budget has refused so far. */
export interface RebuildRefusals {
  /** Uploads refused. */
  readonly refused: number;
  /** Their bytes. */
  readonly refusedBytes: number;
}

/**
 * The server-wide budget for Rebuild uploads: a token bucket of request bytes, filling at
 * `bytesPerSecond` up to `burstBytes`. It protects everything else the event loop serves
 * (sends, reads) from a failover storm, when the clients of a dead server all upload their
 * copies here at once: decoding and merging an upload costs in proportion to its bytes.
 *
 * An upload it cannot admit now is refused (RESOURCE_EXHAUSTED, changing nothing) with the time
 * to come back. Those times are handed out one after another: the first when the bucket will
 * hold its bytes, each later one as long after the one before as the rate takes to refill its
 * own. So a crowd refused together is told to come back spread over the time the budget needs
 * for all of it, rather than all at one instant to be refused again. A refused upload reserves
 * nothing: one that never comes back leaves its share to whoever comes next.
 */
export class RebuildBudget implements RebuildRefusals {
  private readonly bucket: Bucket;
  /** When the last upload refused so far was told to come back. */
  private lastSlotMs = Number.NEGATIVE_INFINITY;
  private refusedCount = 0;
  private refusedByteCount = 0;

  /**
   * @param bytesPerSecond 0: no budget
   * @param burstBytes at least the largest request (src/server/rate-limits.ts, rebuildBurstBytes)
   * @param onRefusal told of each refusal, for the log
   */
  constructor(
    private readonly bytesPerSecond: number,
    private readonly burstBytes: number,
    private readonly nowMs: () => number = () => performance.now(),
    private readonly onRefusal: (refusal: { readonly bytes: number; readonly retryAfterMs: number }) => void = () => {},
  ) {
    this.bucket = { tokens: burstBytes, atMs: nowMs() };
  }

  get refused(): number {
    return this.refusedCount;
  }

  get refusedBytes(): number {
    return this.refusedByteCount;
  }

  /** Admits an upload of `bytes` (takes them from the bucket), or refuses it with when to retry. */
  admit(bytes: number): void {
    if (this.bytesPerSecond <= 0) return;
    const now = this.nowMs();
    refill(this.bucket, now, this.bytesPerSecond, this.burstBytes);
    // One larger than the whole burst waits for a full bucket and leaves it in debt: it still pays for its bytes.
    const need = Math.min(bytes, this.burstBytes);
    if (this.bucket.tokens >= need) {
      this.bucket.tokens -= bytes;
      return;
    }
    // When the bucket holds this upload's bytes, and the uploads told to come back before it have taken theirs.
    const slot = Math.max(now + msUntil(this.bucket, need, this.bytesPerSecond), this.lastSlotMs + (need / this.bytesPerSecond) * 1000);
    this.lastSlotMs = slot;
    const retryAfterMs = Math.max(1, Math.ceil(slot - now));
    this.refusedCount += 1;
    this.refusedByteCount += bytes;
    this.onRefusal({ bytes, retryAfterMs });
    throw new ChatError(
      'resource-exhausted',
      `this server is admitting rebuild uploads at ${this.bytesPerSecond} bytes/s (--rebuild-bytes-per-second); retry in ${retryAfterMs} ms`,
      { retryAfterMs },
    );
  }
}
