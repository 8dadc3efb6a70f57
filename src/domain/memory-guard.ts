import type { Limits } from './limits.js';

/** One look at the heap. */
export interface HeapReading {
  /** Bytes of heap in use. */
  readonly usedBytes: number;
  /** The most heap the process may use, in bytes. */
  readonly limitBytes: number;
  /**
   * How many full garbage collections have run so far. Memory freed by an eviction shows in
   * `usedBytes` only after the next one; until then the guard counts it as freed.
   */
  readonly collections: number;
}

/** Reads the heap; injected, so tests can fake it (the server's reads V8's statistics). */
export type MemoryProbe = () => HeapReading;

/** A probe that never reports pressure: for stores that do not guard memory. */
export const noMemoryPressure: MemoryProbe = () => ({ usedBytes: 0, limitBytes: Number.POSITIVE_INFINITY, collections: 0 });

/** What one round of eviction did. */
export interface EvictionReport {
  readonly chats: number;
  readonly freedBytes: number;
  /** The heap reading that started the round. */
  readonly heapUsedBytes: number;
  readonly heapLimitBytes: number;
  /** Whether the heap is still estimated above the high-water mark (writes are refused). */
  readonly stillShort: boolean;
}

/** Counters over the server's life, for logs and metrics. */
export interface EvictionTotals {
  readonly rounds: number;
  readonly chats: number;
  readonly freedBytes: number;
}

/**
 * The heap's safety margin. Above the high-water mark, chats are evicted (the caller picks
 * which, least recently used first) until the heap is estimated below the low-water mark;
 * when nothing more can go and the heap is still above high water, the server is short.
 */
export class MemoryGuard {
  private unreclaimed = 0;
  private seenCollections = 0;
  private rounds = 0;
  private chats = 0;
  private freedBytes = 0;

  constructor(
    private readonly limits: Pick<Limits, 'heapHighWaterPercent' | 'heapLowWaterPercent'>,
    private readonly probe: MemoryProbe,
  ) {}

  /** The evictions so far. */
  get totals(): EvictionTotals {
    return { rounds: this.rounds, chats: this.chats, freedBytes: this.freedBytes };
  }

  /**
   * Makes room before a write: when the heap is above high water, calls `evictNext` (which
   * evicts one chat and returns the bytes it held, or undefined when none can go) until the
   * estimate is below low water. Returns undefined when nothing had to be done, else the report.
   */
  relieve(evictNext: () => number | undefined): EvictionReport | undefined {
    const reading = this.probe();
    if (reading.collections !== this.seenCollections) {
      this.seenCollections = reading.collections;
      this.unreclaimed = 0;
    }
    const high = (reading.limitBytes * this.limits.heapHighWaterPercent) / 100;
    const low = (reading.limitBytes * this.limits.heapLowWaterPercent) / 100;
    const estimate = () => reading.usedBytes - this.unreclaimed;
    if (estimate() <= high) return undefined;

    let chats = 0;
    let freedBytes = 0;
    while (estimate() > low) {
      const freed = evictNext();
      if (freed === undefined) break;
      chats += 1;
      freedBytes += freed;
      this.unreclaimed += freed;
    }
    if (chats > 0) {
      this.rounds += 1;
      this.chats += chats;
      this.freedBytes += freedBytes;
    }
    return { chats, freedBytes, heapUsedBytes: reading.usedBytes, heapLimitBytes: reading.limitBytes, stillShort: estimate() > high };
  }
}
