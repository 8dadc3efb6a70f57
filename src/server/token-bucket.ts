/** A token bucket's level: the tokens it held at `atMs`. */
export interface Bucket {
  tokens: number;
  atMs: number;
}

/**
 * The tokens `bucket` holds at `nowMs`, filling at `perSecond` up to `burst`. Time that ran
 * backwards (a clock stepped back) adds nothing and takes nothing away.
 */
export function levelAt(bucket: Bucket, nowMs: number, perSecond: number, burst: number): number {
  return Math.min(burst, bucket.tokens + (Math.max(0, nowMs - bucket.atMs) / 1000) * perSecond);
}

/** Brings `bucket` to `nowMs` (see {@link levelAt}). */
export function refill(bucket: Bucket, nowMs: number, perSecond: number, burst: number): void {
  bucket.tokens = levelAt(bucket, nowMs, perSecond, burst);
  bucket.atMs = nowMs;
}

/** In how many whole milliseconds after its `atMs` `bucket` holds `need` tokens, filling at `perSecond`. */
export function msUntil(bucket: Bucket, need: number, perSecond: number): number {
  return Math.max(0, Math.ceil(((need - bucket.tokens) / perSecond) * 1000));
}
