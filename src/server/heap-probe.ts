import { constants, PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import type { HeapReading, MemoryProbe } from '../domain/memory-guard.js';

/** V8's heap limit for this process, in bytes (what `--max-old-space-size` sets, plus the young generation). */
export function heapLimitBytes(): number {
  return getHeapStatistics().heap_size_limit;
}

/** The server's {@link MemoryProbe}, and the observer it needs stopped at shutdown. */
export interface HeapProbe {
  readonly probe: MemoryProbe;
  close(): void;
}

/**
 * Reads V8's heap statistics at most once per `intervalMs` (a write in between gets the last
 * reading), and counts full garbage collections, after which memory freed by an eviction shows.
 */
export function heapProbe(intervalMs: number, now: () => number = () => performance.now()): HeapProbe {
  let collections = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (((entry as { detail?: { kind?: number } }).detail)?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) collections += 1;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  let last: HeapReading | undefined;
  let readAt = Number.NEGATIVE_INFINITY;
  return {
    probe: () => {
      const at = now();
      if (!last || at - readAt >= intervalMs || last.collections !== collections) {
        const { used_heap_size, heap_size_limit } = getHeapStatistics();
        last = { usedBytes: used_heap_size, limitBytes: heap_size_limit, collections };
        readAt = at;
      }
      return last;
    },
    close: () => observer.disconnect(),
  };
}
